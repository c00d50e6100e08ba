from datetime import timedelta

import pytest

from rollout.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("250ms", 0.25), (45, 45), ("12", 12)],
)
def test_parse(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "5 minutes", "m5", "1x", True, None, "-5s"])
def test_parse_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_format_round_trips() -> None:
    for text in ("30s", "5m", "1h30m", "1d2h"):
        assert format_duration(parse_duration(text)) == text


def test_a_duration_beyond_what_a_timedelta_holds_is_refused_not_a_crash() -> None:
    with pytest.raises(ValueError, match="beyond any duration a rollout can use"):
        parse_duration(-86_399_999_913_601)

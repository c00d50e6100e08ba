"""moto's S3 server in a process of its own, stopped cleanly by SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading

from moto.server import ThreadedMotoServer


def main(argv: list[str] | None = None) -> None:
    """Serve the S3 API on 127.0.0.1 until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", help="sandbox directory (identifies the process)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()

"""Where a rollout stands and where it goes next. Pure.

Its statuses and moves, the persisted record, the progression, the calendar, and the
reconciler's and the rollback's verdicts.
"""

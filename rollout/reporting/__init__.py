"""What people see and are told.

The rollout table, result text, incident report and chart, status, questions, notifications,
alert rules and metrics.
"""

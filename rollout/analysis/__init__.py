"""What a window measures and how it is judged. Pure.

SLIs as PromQL, gate verdicts, candidate against stable, the post-rollback health watch.
"""

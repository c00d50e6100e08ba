"""Who gets the new code. Pure.

The flag state, sticky bucketing, each step's audience, and how many users it admits.
"""

"""The rollout state machine, pure: ``advance(rollout, observations, now)`` returns the next
state and the commands to send. No I/O, no clock, no database: it imports only itself,
like Flask's ``sansio``, so every rule is tested without a broker.
"""

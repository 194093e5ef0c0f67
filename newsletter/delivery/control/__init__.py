"""Control and progress of a send: transitions, counts and rate, the delivery log, timezones."""

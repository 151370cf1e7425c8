"""What every service process does the same way: start-up order, migrations, the outbox relay,
shutdown.
"""

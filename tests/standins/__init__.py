"""Loopback stand-ins for the servers the bot talks to, enforcing their real rules."""

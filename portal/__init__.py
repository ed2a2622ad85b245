"""Helpers for concerns every app shares (errors meant for users, client addresses, rate limits,
Redis, CSV safety): one place for each, so the apps' copies cannot drift apart."""

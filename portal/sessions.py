"""Sessions kept in PostgreSQL with a copy in Redis (Django's cached_db) that keep working while
Redis is down or silent: SESSION_ENGINE = "portal.sessions" wherever Redis is configured.

Django's cached_db reads a session from the database when reading the copy fails, but then
writes the copy back without catching the error, and its existence check and its delete raise
too: with Redis down every signed-in page was a 500. Here an unreachable Redis is a cache miss,
and sessions are read and written in PostgreSQL alone until it answers again. Signing out is the
exception (SessionStore.flush), and so is ending a session from the account page (end_sessions).

The sessions' table is accounts.UserSession: each row also says whose session it is and from
which browser and address it was last used (what the session's own data says, see
CLIENT_SESSION_KEY), so that a person can list their sessions and end them.
"""

import logging

from django.apps import apps
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
from redis import RedisError

logger = logging.getLogger(__name__)

# Where in a session's data the browser and address it was last used from are kept
# (accounts/sessions.py writes them), copied into the session's row on save.
CLIENT_SESSION_KEY = "_client"


class SessionStore(cached_db.SessionStore):
    """cached_db for which an unreachable Redis is a miss, not an error. Once Redis failed, the
    rest of the request leaves it alone: a silent Redis costs a request one timeout, not one per
    session operation."""

    def __init__(self, session_key=None):
        super().__init__(session_key)
        self._redis_failed = False

    def _try_cache(self, operation, *args, done_without):
        """Run the cache operation unless Redis already failed in this request; on RedisError log
        what was `done_without` it, and return None."""
        if self._redis_failed:
            return None
        try:
            return operation(*args)
        except RedisError:
            self._redis_failed = True
            logger.warning("Redis is unreachable: session %s", done_without)
            return None

    @classmethod
    def get_model_class(cls):
        return apps.get_model("accounts", "UserSession")

    def create_model_instance(self, data):
        session = super().create_model_instance(data)
        client = data.get(CLIENT_SESSION_KEY) or {}
        session.user_id = data.get(SESSION_KEY)
        session.user_agent = client.get("agent", "")
        session.ip = client.get("ip")
        session.last_used_at = client.get("at")
        return session

    def load(self):
        data = self._try_cache(self._cache.get, self.cache_key, done_without="read from PostgreSQL")
        if data is not None:
            return data
        session = self._get_session_from_db()
        if session is None:
            return {}
        data = self.decode(session.session_data)
        expiry = self.get_expiry_age(expiry=session.expire_date)
        self._try_cache(self._cache.set, self.cache_key, data, expiry, done_without="not copied to Redis")
        return data

    def exists(self, session_key):
        key = self.cache_key_prefix + (session_key or "")
        cached = session_key and self._try_cache(self._cache.has_key, key, done_without="looked up in PostgreSQL only")
        return bool(cached) or DatabaseStore.exists(self, session_key)

    def save(self, must_create=False):
        DatabaseStore.save(self, must_create)
        # A copy older than the row is harmless: the next read after Redis is back may find it, and
        # its auth hash is checked against the user's password on every request anyway.
        expiry = self.get_expiry_age()
        self._try_cache(self._cache.set, self.cache_key, self._session, expiry, done_without="saved to PostgreSQL only")

    def delete(self, session_key=None):
        """Delete a session, and its copy if Redis answers. Signing in and changing one's password
        rotate the key through here: a copy left under the old key is harmless (anonymous, or
        holding an auth hash that no longer matches the user's password)."""
        DatabaseStore.delete(self, session_key)
        session_key = session_key or self.session_key
        if session_key is not None:
            key = self.cache_key_prefix + session_key
            self._try_cache(self._cache.delete, key, done_without="deleted from PostgreSQL only")

    def flush(self):
        """Sign out, deleting the copy first: raises RedisError while Redis cannot be reached (the
        portal answers 503, try again). A Redis that came back still holding the copy would
        otherwise let the session work again for anyone who has its cookie."""
        if self.session_key is not None:
            self._cache.delete(self.cache_key)
        super().flush()


def end_sessions(session_keys):
    """End the sessions with these keys: their copies in Redis first, raising RedisError while it
    cannot be reached (as signing out does: a copy left behind would keep the session working),
    then their rows."""
    store = SessionStore()
    session_keys = list(session_keys)
    if session_keys:
        store._cache.delete_many([store.cache_key_prefix + key for key in session_keys])
        store.get_model_class().objects.filter(session_key__in=session_keys).delete()

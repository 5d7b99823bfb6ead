"""Idle session timeout without a session write on every request.

Sessions end after SESSION_COOKIE_AGE (30 minutes) without a request. Django's
SESSION_SAVE_EVERY_REQUEST restarts that clock by rewriting the session row on every request (a
transaction with an UPDATE of django_session: three round trips and the re-encoding of the
session, for every page and every CRF save). Here the row is rewritten only when its stored
expiry would move by more than REFRESH_AFTER: the idle timeout is then between 29 and 30 minutes
after the last request, never longer.
"""

from datetime import timedelta

from django.contrib.sessions.backends import db

# Rewrite the session when it would expire this much later than stored.
REFRESH_AFTER = timedelta(seconds=60)


class SessionStore(db.SessionStore):
    """The database session store; also remembers the expiry date of the row it loaded."""

    stored_expiry = None

    def _get_session_from_db(self):
        session = super()._get_session_from_db()
        self.stored_expiry = session.expire_date if session is not None else None
        return session


class IdleTimeoutMiddleware:
    """Restart the idle clock of the request's session when it is more than REFRESH_AFTER behind.

    Listed right after SessionMiddleware: it marks the session modified on the way out, and
    SessionMiddleware then saves it with a new expiry date (now + SESSION_COOKIE_AGE).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is None or session.modified or session.session_key is None:
            return response  # no session, or one that is saved anyway
        # Loads the session if nothing in the request did (any request carrying a valid session
        # cookie counts as activity, as with SESSION_SAVE_EVERY_REQUEST).
        new_expiry = session.get_expiry_date()
        stored = getattr(session, "stored_expiry", None)
        if stored is not None and new_expiry - stored > REFRESH_AFTER:
            session.modified = True
        return response

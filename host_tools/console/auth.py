"""Sessions, CSRF tokens and login throttling for the console.

- A session is a random 256-bit token in the cookie ``__Host-ft_session`` (HttpOnly,
  Secure, SameSite=Strict, Path=/): the server keeps the operator, role, CSRF token and
  language; it ends after ``idle`` seconds unused, ``lifetime`` seconds in all, at logout,
  or when the operator is removed or their role changes in ``operators.json``.
- Every state-changing request carries the session's CSRF token (form field ``csrf`` or
  header ``X-CSRF-Token``), compared in constant time. The login form has its own token
  (double-submit: cookie ``__Host-ft_login`` and the form field).
- :class:`Throttle`: at most ``limit`` failed logins per ``window`` seconds per account
  and per client address; the next one locks that account (and address) out for
  ``lockout`` seconds, during which no password is even checked.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_COOKIE = "__Host-ft_session"
LOGIN_COOKIE = "__Host-ft_login"


@dataclass
class Session:
    token: str
    name: str
    role: str
    csrf: str
    lang: str
    created: float
    last: float = field(default=0.0)

    @property
    def supervisor(self) -> bool:
        return self.role == "supervisor"

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf, str(given))


class Sessions:
    def __init__(
        self,
        *,
        idle: float = 1800.0,
        lifetime: float = 12 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.idle = idle
        self.lifetime = lifetime
        self._clock = clock
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def new(self, name: str, role: str, lang: str) -> Session:
        now = self._clock()
        s = Session(
            secrets.token_urlsafe(32), name, role, secrets.token_urlsafe(32), lang, now, now
        )
        with self._lock:
            self._by_token[s.token] = s
        return s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        now = self._clock()
        with self._lock:
            s = self._by_token.get(token)
            if s is None:
                return None
            if now - s.last > self.idle or now - s.created > self.lifetime:
                del self._by_token[token]
                return None
            s.last = now
            return s

    def end(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)


class Throttle:
    def __init__(
        self,
        *,
        limit: int = 5,
        window: float = 60.0,
        lockout: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limit = limit
        self.window = window
        self.lockout = lockout
        self._clock = clock
        self._fails: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def keys(name: str, address: str) -> tuple[str, str]:
        return (f"account:{name}", f"address:{address}")

    def locked(self, name: str, address: str) -> float:
        """Seconds until ``name`` from ``address`` may try again (0: now). ``limit``
        failures within ``window`` lock the account or address for ``lockout`` seconds."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for k in self.keys(name, address):
                fails = self._fails.get(k)
                while fails and now - fails[0] > self.window:
                    fails.popleft()
                if fails and len(fails) >= self.limit:
                    self._locked[k] = max(self._locked.get(k, 0.0), fails[-1] + self.lockout)
                wait = max(wait, self._locked.get(k, 0.0) - now)
        return wait

    def failed(self, name: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            for k in self.keys(name, address):
                self._fails.setdefault(k, deque()).append(now)

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self._fails.pop(f"account:{name}", None)

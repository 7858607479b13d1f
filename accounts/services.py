"""Writes of the accounts domain.

Password reset by e-mail is throttled twice: per e-mail address, so nobody floods an inbox or fishes
for links, and per client address (REMOTE_ADDR as config.proxies settles it), so nobody walks the
staff's addresses. The counters live in the cache (CACHE_URL: Redis, shared by every process; the
per-process memory cache otherwise) in clock-hour windows; a request is allowed while this hour's
and the previous hour's requests together stay within the limit, so no rolling hour ever sees more
than the limit, however the requests fall around the full hour. Refused requests count too."""

import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import salted_hmac

WINDOW_SECONDS = 3600


def _requests_in_the_last_two_windows(scope: str, value: str, *, now: datetime.datetime) -> int:
    """Records one request for (scope, value) and returns this and the previous window's count."""
    digest = salted_hmac("accounts.password-reset-throttle", f"{scope}:{value}").hexdigest()[:32]
    window = int(now.timestamp()) // WINDOW_SECONDS
    key = f"password-reset:{scope}:{digest}:{window}"
    # kept two windows: in the next one it still counts as "the previous hour"
    cache.add(key, 0, timeout=2 * WINDOW_SECONDS)
    try:
        current = cache.incr(key)
    except ValueError:  # evicted between add and incr: count afresh
        cache.set(key, 1, timeout=2 * WINDOW_SECONDS)
        current = 1
    return current + cache.get(f"password-reset:{scope}:{digest}:{window - 1}", 0)


def password_reset_allowed(*, email: str, client: str, now: datetime.datetime) -> bool:
    """Records a password-reset request for `email` from `client` and says whether a mail may go out:
    neither the address nor the client has reached its limit (PASSWORD_RESET_LIMIT_PER_EMAIL,
    PASSWORD_RESET_LIMIT_PER_CLIENT) within the hour."""
    by_email = _requests_in_the_last_two_windows("email", email.strip().casefold(), now=now)
    by_client = _requests_in_the_last_two_windows("client", client or "unknown", now=now)
    return (by_email <= settings.PASSWORD_RESET_LIMIT_PER_EMAIL
            and by_client <= settings.PASSWORD_RESET_LIMIT_PER_CLIENT)

"""Writes of the accounts domain.

Password reset by e-mail is throttled twice: per e-mail address, so nobody floods an inbox or fishes
for links, and per client address (REMOTE_ADDR as config.proxies settles it), so nobody walks the
staff's addresses. The counters live in the cache (CACHE_URL: Redis, shared by every process; the
per-process memory cache otherwise) in clock-hour windows; a request is allowed while this hour's
and the previous hour's requests together stay within the limit, so no rolling hour ever sees more
than the limit, however the requests fall around the full hour. Refused requests count too."""

import datetime
import hashlib
import secrets

from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import salted_hmac

from .models import ApiKey

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


# --- API keys -------------------------------------------------------------------------------------

def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(*, sales_account, name: str = "") -> tuple[ApiKey, str]:
    """A new key for `sales_account`: returns the stored row and the key, which is not stored and
    cannot be shown again."""
    key = ApiKey.PREFIX + secrets.token_urlsafe(32)
    row = ApiKey.objects.create(sales_account=sales_account, name=name, prefix=key[:12], key_hash=api_key_hash(key))
    return row, key


def api_key_authenticate(key: str, *, now: datetime.datetime):
    """The active key row for `key`, or None. Records the use at most once a minute per key (no
    write on every request)."""
    if not key.startswith(ApiKey.PREFIX) or len(key) > 100:
        return None
    row = ApiKey.objects.select_related("sales_account").filter(key_hash=api_key_hash(key),
                                                                revoked_at__isnull=True).first()
    if row is None:
        return None
    if row.last_used_at is None or now - row.last_used_at > datetime.timedelta(minutes=1):
        ApiKey.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    return row


def api_keys_revoke(*, key_ids, now: datetime.datetime) -> int:
    return ApiKey.objects.filter(id__in=list(key_ids), revoked_at__isnull=True).update(revoked_at=now)

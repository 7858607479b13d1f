"""The sending threads' HTTP session for anymail's requests-based backends: a plain call to the
provider's API goes straight to the session's own urllib3 connection pool.

requests builds, merges and checks a great deal per call that a sending thread's calls never need
(cookies, hooks, proxies and .netrc of the environment, redirects, authentication handlers): 580 µs
of CPU per call against 270 µs for the same call through urllib3 (measured against the provider
simulator, `docs/benchmarks-sending.md`), a seventh of what a reminder costs the worker. A call
qualifies when the session is plain (no proxy, authentication, cookies, hooks or client
certificate) and the call passes a body and headers only; every other call, and a redirect,
goes through requests as before. What the caller sees is the same: a `requests.Response`, and
requests' own exceptions for the same failures (mapped as requests' HTTPAdapter maps urllib3's), so
anymail wraps them and `classify_send_error` tells a refused connection (sent again) from a read
timeout (never sent again) exactly as it does for requests."""

from __future__ import annotations

import requests
from requests.adapters import TimeoutSauce
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import exceptions as u3

REDIRECTS = {301, 302, 303, 307, 308}


class DirectSession(requests.Session):
    """Takes over an opened backend's session (its headers, adapters, TLS settings) as it is."""

    def __init__(self, session: requests.Session) -> None:  # noqa: D107 - no super().__init__: adopts its state
        self.__dict__.update(session.__dict__)
        self._pools: dict[str, tuple] = {}  # url -> (urllib3 pool, path, prepared request describing it)

    def _plain(self) -> bool:
        return not (self.trust_env or self.proxies or self.auth or self.cert or self.params or len(self.cookies)
                    or any(self.hooks.values()))

    def request(self, method, url, params=None, data=None, headers=None, cookies=None, files=None, auth=None,
                timeout=None, allow_redirects=True, proxies=None, hooks=None, stream=None, verify=None, cert=None,
                json=None):
        if (params or cookies or files or auth or proxies or hooks or stream or verify is not None or cert
                or json is not None or not isinstance(data, str | bytes) or not self._plain()):
            return super().request(method, url, params=params, data=data, headers=headers, cookies=cookies,
                                   files=files, auth=auth, timeout=timeout, allow_redirects=allow_redirects,
                                   proxies=proxies, hooks=hooks, stream=stream, verify=verify, cert=cert, json=json)
        response = self._direct(method, url, data, headers, timeout)
        if allow_redirects and response.status_code in REDIRECTS and "location" in response.headers:
            # the provider did not take the message: requests follows the redirect as it always did
            return super().request(method, url, data=data, headers=headers, timeout=timeout)
        return response

    def _pool(self, url: str) -> tuple:
        pool = self._pools.get(url)
        if pool is None:
            prepared = requests.PreparedRequest()
            prepared.prepare(method="POST", url=url)
            adapter = self.get_adapter(url)
            connection = adapter.get_connection_with_tls_context(prepared, self.verify, proxies={}, cert=None)
            adapter.cert_verify(connection, url, self.verify, None)
            pool = self._pools[url] = (connection, adapter.request_url(prepared, {}), prepared, adapter.max_retries)
        return pool

    def _direct(self, method: str, url: str, data: str | bytes, headers, timeout) -> requests.Response:
        connection, path, prepared, retries = self._pool(url)
        merged = CaseInsensitiveDict(self.headers)
        merged.update(headers or {})
        for name in [name for name, value in merged.items() if value is None]:
            del merged[name]  # as requests' merge: None removes a session header
        body = data.encode("utf-8") if isinstance(data, str) else data
        merged["Content-Length"] = str(len(body))
        if isinstance(timeout, tuple):
            timeout = TimeoutSauce(connect=timeout[0], read=timeout[1])
        elif not isinstance(timeout, TimeoutSauce):
            timeout = TimeoutSauce(connect=timeout, read=timeout)
        try:
            raw = connection.urlopen(method=method, url=path, body=body, headers=merged, redirect=False,
                                     assert_same_host=False, preload_content=True, decode_content=True,
                                     retries=retries, timeout=timeout)
        except (u3.ProtocolError, OSError) as err:
            raise requests.ConnectionError(err, request=prepared) from err
        except u3.MaxRetryError as err:
            if isinstance(err.reason, u3.ConnectTimeoutError) and not isinstance(err.reason, u3.NewConnectionError):
                raise requests.ConnectTimeout(err, request=prepared) from err
            if isinstance(err.reason, u3.SSLError):
                raise requests.exceptions.SSLError(err, request=prepared) from err
            raise requests.ConnectionError(err, request=prepared) from err
        except u3.ClosedPoolError as err:
            raise requests.ConnectionError(err, request=prepared) from err
        except u3.SSLError as err:
            raise requests.exceptions.SSLError(err, request=prepared) from err
        except u3.ReadTimeoutError as err:
            raise requests.ReadTimeout(err, request=prepared) from err
        except u3.InvalidHeader as err:
            raise requests.exceptions.InvalidHeader(err, request=prepared) from err
        except u3.HTTPError:
            raise  # as requests does
        response = requests.Response()
        response.status_code = raw.status
        response.headers = CaseInsensitiveDict(raw.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response._content = raw.data
        response.reason = raw.reason
        response.url = url
        response.request = prepared
        return response

# Copyright: regops.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transport: pooled connections, TLS trust and client certificates per host, proxies, the one retry
loop of the collection, and redirects followed by hand.

Knows nothing of the registry API or of authentication: the caller says, per URL, which headers to add
(``authorize``), and the transport never sends them to another origin on its own.

TLS, per host (scheme + host + port origin):

* trust = the system roots (OpenSSL's default verify paths, which honour ``SSL_CERT_FILE`` and
  ``SSL_CERT_DIR`` as curl and Go do) + ``ca_path`` + the ``*.crt`` of the host's Docker ``certs.d``
  directory. certifi is used only on a machine whose OpenSSL has no trust store at all;
* a client certificate goes only to its host: ``client_cert``/``client_key`` to the registry's origin,
  a ``certs.d`` pair (``*.cert`` + ``*.key``) to the host whose directory holds it. A redirect target
  or a token realm on another host never sees the registry's certificate.
"""

from __future__ import annotations

import email.utils
import os
import random
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import urljoin, urlsplit

try:
    import requests
    from requests.adapters import HTTPAdapter
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module layer
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = exc
    HTTPAdapter = object

from ansible_collections.regops.registry.plugins.module_utils._auth import redact_url
from ansible_collections.regops.registry.plugins.module_utils.errors import (
    MAX_ERROR_BODY,
    InvalidInput,
    RegistryError,
    describe_errors,
    parse_error_body,
)

USER_AGENT = "regops.registry/0.1.0"
CERTS_DIR_ENV = "REGOPS_REGISTRY_CERTS_DIR"
DEFAULT_CERTS_DIR = "/etc/docker/certs.d"
MAX_REDIRECTS = 10
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
# A 500 is retried only where repeating cannot do harm: reads, and DELETE (idempotent; distribution 2.8 answers
# 500 "invalid checksum digest format" when deletes in one repository race over its tag links).
RETRY_500_METHODS = ("GET", "HEAD", "DELETE")
STREAM_CHUNK = 1 << 20
MAX_RETRY_WAIT = 60.0

T = TypeVar("T")
Origin = tuple  # (scheme, "host:port"), host lowercased


class RetryableError(RegistryError):
    """A failure worth another try of the whole attempt: a reset connection, a 503, a body that broke off.

    ``response``: the last answer, returned (not raised) when the tries run out, so the caller reports it.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, response: Any = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.response = response
        self.spent = False  # set when a loop gave up on it: an outer loop must not try it again


def origin(url: str) -> Origin:
    """``(scheme, host:port)`` with the default port filled in: what "the same host" means for credentials."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    return parts.scheme, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def header_values(response, name: str) -> list[str]:
    """Every value of a header, unmerged where urllib3 kept them apart (WWW-Authenticate, Link)."""
    raw = getattr(response, "raw", None)
    headers = getattr(raw, "headers", None)
    getlist = getattr(headers, "getlist", None)
    if getlist is not None:
        values = getlist(name)
        if values:
            return list(values)
    value = response.headers.get(name)
    return [value] if value else []


def response_error(response, operation: str, method: str, url: str, redact: Callable[[str], str],
                   message: str | None = None) -> RegistryError:
    """The error for an answer nobody expected: the registry's error codes and words, redacted."""
    try:
        text = response.raw.read(MAX_ERROR_BODY, decode_content=True).decode("utf-8", "replace") if response.raw else ""
    except Exception:  # noqa: BLE001 - the error body is a courtesy, never a second failure
        text = ""
    if not text:
        try:
            text = response.text[:MAX_ERROR_BODY]
        except Exception:  # noqa: BLE001
            text = ""
    errors = parse_error_body(text)
    msg = message or describe_errors(errors, response.status_code, text if not errors else None)
    return RegistryError(redact(msg), operation=operation, method=method, url=redact_url(url),
                         status=response.status_code, errors=errors, body=redact(text[:2000]) if not errors else None)


def rewind(body) -> bool:
    """Only bodies that can be sent again make a request repeatable."""
    if body is None or isinstance(body, (bytes, str, dict)):
        return True
    seek = getattr(body, "seek", None)
    if seek is None:
        return False
    try:
        seek(0)
        return True
    except (OSError, ValueError):
        return False


# --- TLS per host ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class HostTls:
    """What one origin gets: whether to verify, extra trust anchors, and its own client certificate."""

    verify: bool
    ca_files: tuple[str, ...] = ()
    client_cert: tuple[str, str | None] | None = None


def certs_dir(environ=None) -> str:
    """Docker's per-host certificate directory; ``REGOPS_REGISTRY_CERTS_DIR`` moves it (tests, non-root users)."""
    environ = os.environ if environ is None else environ
    return environ.get(CERTS_DIR_ENV) or DEFAULT_CERTS_DIR


def certs_d_entries(directory: str, host_origin: Origin) -> tuple[tuple[str, ...], tuple[str, str] | None]:
    """``(CA files, client certificate pair)`` from ``<directory>/<host[:port]>/``, by the Docker daemon's rules.

    ``*.crt`` are CAs; ``x.cert`` with ``x.key`` beside it is a client certificate (the first, in name order:
    one client certificate per host). The directory is ``host:port``, or ``host`` for the scheme's default port.
    """
    scheme, hostport = host_origin
    host, _sep, port = hostport.rpartition(":")
    names = [hostport]
    if port == ("443" if scheme == "https" else "80"):
        names.append(host)
    cas: list[str] = []
    pair: tuple[str, str] | None = None
    for name in names:
        folder = os.path.join(directory, name)
        try:
            files = sorted(os.listdir(folder))
        except OSError:
            continue
        cas += [os.path.join(folder, f) for f in files if f.endswith(".crt")]
        for cert in (f for f in files if f.endswith(".cert")):
            key = cert[:-len(".cert")] + ".key"
            if pair is None and key in files:
                pair = (os.path.join(folder, cert), os.path.join(folder, key))
    return tuple(cas), pair


class TlsSettings:
    """Decides, per origin, what TLS gets: the registry's options apply to the registry's origin only,
    except ``ca_path``, which adds a trust anchor for every host the client talks to (trust is not a secret)."""

    def __init__(self, registry_origin: Origin, *, validate_certs: bool = True, ca_path: str | None = None,
                 client_cert: str | None = None, client_key: str | None = None, directory: str | None = None) -> None:
        self.registry_origin = registry_origin
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.client_cert = (client_cert, client_key) if client_cert else None
        self.directory = directory if directory is not None else certs_dir()

    def for_origin(self, host_origin: Origin) -> HostTls:
        if host_origin[0] != "https":
            return HostTls(verify=False)
        cas, pair = certs_d_entries(self.directory, host_origin)
        if host_origin == self.registry_origin and self.client_cert:
            pair = self.client_cert
        ca_files = ((self.ca_path,) if self.ca_path else ()) + cas
        return HostTls(self.validate_certs, ca_files if self.validate_certs else (), pair)


def _system_trust_missing() -> bool:
    """True when OpenSSL has neither a CA file nor a non-empty CA directory (a bare container, some macOS builds)."""
    paths = ssl.get_default_verify_paths()
    if paths.cafile:
        return False
    try:
        return not (paths.capath and os.listdir(paths.capath))
    except OSError:
        return True


def ssl_context(host: HostTls) -> ssl.SSLContext:
    """The context for one host: system roots plus extra anchors, and the host's own client certificate."""
    if host.verify:
        context = ssl.create_default_context()  # OpenSSL default paths: SSL_CERT_FILE / SSL_CERT_DIR honoured
        if _system_trust_missing():
            try:
                import certifi  # pylint: disable=import-outside-toplevel  # only where the system has no roots
                context.load_verify_locations(cafile=certifi.where())
            except ImportError:
                pass
        for path in host.ca_files:
            try:
                if os.path.isdir(path):
                    context.load_verify_locations(capath=path)
                else:
                    context.load_verify_locations(cafile=path)
            except (OSError, ssl.SSLError) as exc:
                raise InvalidInput(f"cannot use the CA certificates in {path}: {exc.strerror or exc}") from None
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if host.client_cert:
        cert, key = host.client_cert
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidInput(f"cannot use the client certificate {cert}"
                               f"{' with the key ' + key if key else ''}: {exc.strerror or exc}") from None
    return context


class _TlsAdapter(HTTPAdapter):
    """An adapter whose pools (direct or through a proxy) use one host's SSL context, and 1 MiB socket writes
    (uploads stream 1 MiB at a time, not 16 KiB). Plain-http origins share the one of ``HostTls(verify=False)``."""

    def __init__(self, context: ssl.SSLContext, pool_size: int) -> None:
        self._context = context
        super().__init__(pool_connections=4, pool_maxsize=pool_size, max_retries=0)

    def init_poolmanager(self, *args, **kwargs):  # pragma: no cover - thin glue
        kwargs.setdefault("blocksize", STREAM_CHUNK)
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy, **proxy_kwargs):  # pragma: no cover - thin glue
        proxy_kwargs["ssl_context"] = self._context
        return super().proxy_manager_for(proxy, **proxy_kwargs)

    def cert_verify(self, conn, url, verify, cert) -> None:
        """Nothing to add: trust and client certificate are in the context (requests would add certifi to it)."""


@dataclass(frozen=True)
class _Route:
    adapter: Any
    verify: bool
    proxies: dict


class Transport:
    """Sends requests for one client. Thread-safe; adapters (connection pools) are made per TLS profile."""

    def __init__(self, tls: TlsSettings, *, timeout: float = 30.0, retries: int = 3, backoff: float = 0.5,
                 pool_size: int = 16, session: Any = None, redact: Callable[[str], str] = str) -> None:
        self.tls = tls
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.pool_size = pool_size
        self.redact = redact
        # An injected session (tests) brings its own adapters; otherwise one adapter per HostTls.
        self._own_adapters = session is None
        self.session = session if session is not None else requests.Session()
        # trust_env would re-apply ~/.netrc credentials to any host (including redirect targets)
        # and let REQUESTS_CA_BUNDLE replace the trust; proxies are read per origin instead.
        self.session.trust_env = False
        self.session.headers["User-Agent"] = USER_AGENT
        self._adapters: dict[HostTls, Any] = {}  # one per TLS profile: hosts that get the same TLS share a pool
        self._routes: dict[tuple[str, str], _Route] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.session.close()
        for adapter in self._adapters.values():
            adapter.close()

    # ------------------------------------------------------------------ one attempt

    def route(self, url: str) -> _Route:
        """How to reach this URL's origin: adapter (pool and TLS), whether to verify, proxies. Worked out once per
        origin (the environment's proxies included: scanning it for every request cost more than a keep-alive
        HEAD itself); a hit takes no lock."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        found = self._routes.get(key)
        if found is not None:
            return found
        with self._lock:
            host = self.tls.for_origin(origin(url))
            if self._own_adapters:
                adapter = self._adapters.get(host)
                if adapter is None:
                    adapter = self._adapters[host] = _TlsAdapter(ssl_context(host), self.pool_size)
            else:
                adapter = self.session.get_adapter(url)
            found = self._routes[key] = _Route(adapter, host.verify, requests.utils.get_environ_proxies(url))
            return found

    def send_once(self, method: str, url: str, headers: dict, body: Any = None, stream: bool = False,
                  timeout: float | None = None):
        """One request straight to the adapter (pool, TLS, proxies), without ``Session.request``.

        Session.request re-merges settings, environment, cookies and hooks on every call; for a keep-alive HEAD
        that cost twice the adapter's own work. Nothing of it applies here: TLS is decided per origin, the
        environment is read once per origin, redirects are followed by ``follow`` and registries do not use
        cookies. The URL is already encoded (API paths, ``Location`` and ``Link`` values are re-quoted).
        """
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = requests.utils.requote_uri(url)
        prepared.headers = requests.structures.CaseInsensitiveDict(self.session.headers)
        prepared.headers.update(headers)
        prepared.prepare_body(body, None)
        prepared.hooks = {"response": []}
        route = self.route(url)
        response = route.adapter.send(prepared, stream=stream, timeout=(min(self.timeout, 30.0), timeout or self.timeout),
                                      verify=route.verify, cert=None, proxies=route.proxies)
        if not stream:
            response.content  # pylint: disable=pointless-statement  # read it all, so the connection goes back
        return response

    # ------------------------------------------------------------------ the retry loop

    def sleep_before_retry(self, attempt: int, retry_after: float | None = None) -> None:
        delay = retry_after
        if delay is None:
            delay = self.backoff * (2 ** attempt) * (0.5 + random.random() / 2)
        time.sleep(min(delay, MAX_RETRY_WAIT))

    def retrying(self, attempt: Callable[[], T], can_repeat: Callable[[], bool] = lambda: True) -> T:
        """THE retry loop: run ``attempt`` again while it raises ``RetryableError``, up to ``retries`` more times.

        Used for single sends (connection errors, 429/5xx) and for whole reads (a body that broke off or did
        not verify). When the tries run out, the last answer is returned if there was one, else the error raised.
        """
        tries = 0
        while True:
            try:
                return attempt()
            except RetryableError as exc:
                if exc.spent:
                    raise
                if tries >= self.retries or not can_repeat():
                    if exc.response is not None:
                        return exc.response
                    # Spent when the tries ran out: a whole read around a send that gave up does not multiply them.
                    # Not when the body cannot be sent again: a source blob breaking off while streamed into an
                    # upload is for the copy's own loop to try again.
                    exc.spent = tries >= self.retries
                    raise
                self.sleep_before_retry(tries, exc.retry_after)
                tries += 1

    def tls_hint(self, exc: Exception, url: str) -> str:
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            host = origin(url)[1]
            return (f"certificate verify failed (the certificate of {host} is not trusted: give its CA with ca_path, "
                    f"put it in {self.tls.directory}/{host}/, or set validate_certs: false)")
        return self.redact(text.splitlines()[0][:300] if text else type(exc).__name__)

    def send(self, method: str, url: str, *, headers: dict, body: Any = None, stream: bool = False,
             timeout: float | None = None, retry_safe: bool = True, operation: str = "",
             peer: str = "the registry"):
        """One logical send: retried on connection errors and retryable statuses when ``retry_safe``."""
        shown = redact_url(url)

        def attempt():
            try:
                response = self.send_once(method, url, headers, body, stream, timeout)
            except requests.exceptions.SSLError as exc:
                raise RegistryError(f"TLS error talking to {peer} at {origin(url)[1]}: {self.tls_hint(exc, url)}",
                                    operation=operation, method=method, url=shown) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                kind = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "connection failed"
                error = RetryableError if retry_safe else RegistryError
                raise error(f"cannot reach {peer} at {origin(url)[1]}: {kind}", operation=operation, method=method,
                            url=shown) from None
            status = response.status_code
            if retry_safe and (status in RETRYABLE_STATUS or (status == 500 and method in RETRY_500_METHODS)):
                response.close()
                raise RetryableError(f"{peer} answered {status}", retry_after=parse_retry_after(
                    response.headers.get("Retry-After")), response=response, operation=operation, method=method,
                    url=shown, status=status)
            return response

        return self.retrying(attempt, lambda: rewind(body))

    # ------------------------------------------------------------------ redirects

    def follow(self, method: str, url: str, *, authorize: Callable[[str], dict], headers: dict | None = None,
               body: Any = None, stream: bool = False, timeout: float | None = None, retry_safe: bool = True,
               follow_redirects: bool = True, ok: Iterable[int] = (), operation: str = ""):
        """Send and follow redirects by hand: ``authorize(url)`` gives each hop its credential headers (the caller
        decides by origin), https never drops to http, 303 turns into a GET, a streamed body is not resent."""
        ok = set(ok)
        hops = 0
        while True:
            send_headers = dict(headers or {})
            send_headers.update(authorize(url))
            response = self.send(method, url, headers=send_headers, body=body, stream=stream, timeout=timeout,
                                 retry_safe=retry_safe, operation=operation,
                                 peer="the registry" if origin(url) == self.tls.registry_origin else "the redirect target")
            status = response.status_code
            if status not in REDIRECT_STATUS or not follow_redirects or status in ok:
                return response
            location = response.headers.get("Location")
            response.close()
            shown = redact_url(url)
            if not location:
                raise RegistryError("redirect without a Location", operation=operation, method=method, url=shown,
                                    status=status)
            hops += 1
            if hops > MAX_REDIRECTS:
                raise RegistryError("too many redirects", operation=operation, method=method, url=shown, status=status)
            target = urljoin(url, location)
            if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
                raise RegistryError("refusing a redirect from https to plain http", operation=operation,
                                    method=method, url=shown, status=status)
            if status == 303:
                method, body = "GET", None
            elif body is not None and not rewind(body):
                raise RegistryError("cannot follow a redirect after streaming the request body",
                                    operation=operation, method=method, url=shown, status=status)
            url = target

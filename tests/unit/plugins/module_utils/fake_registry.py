"""A scripted transport for the client: real requests.Response objects from a routing function, every request recorded."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import requests
from requests.adapters import BaseAdapter
from urllib3 import HTTPHeaderDict, HTTPResponse

from ansible_collections.regops.registry.plugins.module_utils.auth import Credentials
from ansible_collections.regops.registry.plugins.module_utils.client import RegistryClient
from ansible_collections.regops.registry.plugins.module_utils.reference import parse_registry


@dataclass
class Sent:
    method: str
    url: str
    headers: dict
    body: bytes


@dataclass
class Answer:
    status: int = 200
    headers: list = field(default_factory=list)  # list of (name, value): repeated names stay apart
    body: bytes = b""


def error(status: int, code: str, message: str = "", headers=()) -> Answer:
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
    return Answer(status, [("Content-Type", "application/json")] + list(headers), body)


def json_answer(data, headers=(), status=200) -> Answer:
    return Answer(status, [("Content-Type", "application/json")] + list(headers), json.dumps(data).encode())


def _read_body(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (bytes, str)):
        return body.encode() if isinstance(body, str) else body
    if hasattr(body, "read"):
        chunks = []
        while True:
            chunk = body.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    return b"".join(body)


class FakeAdapter(BaseAdapter):
    def __init__(self, route) -> None:
        super().__init__()
        self.route = route
        self.sent: list[Sent] = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        sent = Sent(request.method, request.url, dict(request.headers), _read_body(request.body))
        self.sent.append(sent)
        answer = self.route(sent)
        if isinstance(answer, Exception):
            raise answer
        headers = HTTPHeaderDict()
        for name, value in answer.headers:
            headers.add(name, value)
        if not any(n.lower() == "content-length" for n, _value in answer.headers):
            headers.add("Content-Length", str(len(answer.body)))
        raw = HTTPResponse(body=io.BytesIO(answer.body), headers=headers, status=answer.status,
                           preload_content=False, decode_content=False, request_method=request.method)
        response = requests.Response()
        response.status_code = answer.status
        response.headers = requests.structures.CaseInsensitiveDict(
            {k: ", ".join(headers.getlist(k)) for k in headers.keys()})
        response.raw = raw
        response.url = request.url
        response.request = request
        response.reason = "fake"
        if not stream:
            response.content  # pylint: disable=pointless-statement  # loads the body like requests does
        return response

    def close(self) -> None:
        pass

    def writes(self) -> list[Sent]:
        return [s for s in self.sent if s.method in ("PUT", "PATCH", "POST", "DELETE")]


def make_client(route, registry="https://reg.test", credentials=None, retries=2):
    adapter = FakeAdapter(route)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    client = RegistryClient(parse_registry(registry), credentials or Credentials(), session=session, retries=retries,
                            backoff=0)
    return client, adapter

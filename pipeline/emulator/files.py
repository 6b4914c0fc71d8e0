"""Gemini's Files API, enough for batch input and output files: resumable upload, get,
download, delete.

`POST /upload/{v}/files` with `X-Goog-Upload-Command: start` opens an upload (its URL in
`X-Goog-Upload-URL`); chunks follow to that URL (`upload`, the last `upload, finalize`)
at their `X-Goog-Upload-Offset`. Files live in memory, bounded in count and size.
"""

import base64
import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from pipeline.emulator.batch_jobs import timestamp
from pipeline.emulator.gemini import google_error, json_response
from pipeline.emulator.gemini_requests import field as wire_field
from pipeline.emulator.gemini_requests import read_body
from pipeline.emulator.state import BadRequest, Json

MAX_FILE_BYTES: Final = 64 * 1024 * 1024
MAX_FILES: Final = 64
# Uploaded files expire after two days, as Gemini's do.
_TTL_S: Final = 48 * 3600


@dataclass
class StoredFile:
    """One file: its resource fields and its bytes (still arriving while uploading)."""

    name: str
    mime_type: str
    size: int
    display_name: str | None = None
    generated: bool = False
    data: bytearray = field(default_factory=bytearray, repr=False)
    created: float = field(default_factory=time.time)
    done: bool = False

    def resource(self, base_url: str) -> Json:
        """The File resource."""
        resource: Json = {
            "name": self.name,
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data) if self.done else self.size),
            "createTime": timestamp(self.created),
            "updateTime": timestamp(self.created),
            "expirationTime": timestamp(self.created + _TTL_S),
            "sha256Hash": base64.b64encode(hashlib.sha256(self.data).digest()).decode(),
            "uri": f"{base_url}/v1beta/{self.name}",
            "state": "ACTIVE" if self.done else "PROCESSING",
            "source": "GENERATED" if self.generated else "UPLOADED",
        }
        if self.display_name:
            resource["displayName"] = self.display_name
        if self.generated:
            resource["downloadUri"] = f"{base_url}/v1beta/{self.name}:download?alt=media"
        return resource


class FileBook:
    """Files and uploads in progress, at most MAX_FILES, the oldest dropped first."""

    def __init__(self) -> None:
        self._files: OrderedDict[str, StoredFile] = OrderedDict()

    def _hold(self, stored: StoredFile) -> StoredFile:
        if stored.size > MAX_FILE_BYTES:
            raise BadRequest(f"* File.size_bytes: at most {MAX_FILE_BYTES} bytes")
        while len(self._files) >= MAX_FILES:
            self._files.popitem(last=False)
        self._files[stored.name] = stored
        return stored

    def start(self, mime_type: str, size: int, display_name: str | None) -> StoredFile:
        """Open an upload of `size` bytes."""
        return self._hold(
            StoredFile(f"files/{secrets.token_hex(8)}", mime_type, size, display_name)
        )

    def generated(self, data: bytes, mime_type: str = "application/jsonl") -> StoredFile:
        """Hold a file the emulator wrote (a batch's responses)."""
        name = f"files/batch-{secrets.token_hex(8)}"
        stored = StoredFile(name, mime_type, len(data), generated=True, data=bytearray(data))
        stored.done = True
        return self._hold(stored)

    def get(self, name: str) -> StoredFile | None:
        """The file of that name (`files/<id>`), if held."""
        return self._files.get(name)

    def delete(self, name: str) -> bool:
        """Forget a file; whether it was held."""
        return self._files.pop(name, None) is not None


FILES_KEY: Final = web.AppKey("emulator_files", FileBook)


def _root(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def upload(request: web.Request) -> web.Response:
    """`POST /upload/{v}/files`: start an upload, or take one chunk of it."""
    book = request.app[FILES_KEY]
    command = request.headers.get("X-Goog-Upload-Command", "")
    upload_id = request.query.get("upload_id")
    try:
        if upload_id is None:
            return await _start(request, book, command)
        stored = book.get(f"files/{upload_id}")
        if stored is None or stored.done:
            return google_error(404, f"Upload {upload_id} not found.")
        return await _chunk(request, stored, command)
    except BadRequest as exc:
        return google_error(400, str(exc))


async def _start(request: web.Request, book: FileBook, command: str) -> web.Response:
    if command != "start" or request.headers.get("X-Goog-Upload-Protocol") != "resumable":
        raise BadRequest("* uploads are resumable: X-Goog-Upload-Command start comes first")
    size = request.headers.get("X-Goog-Upload-Header-Content-Length", "")
    if not size.isdigit():
        raise BadRequest("* X-Goog-Upload-Header-Content-Length: the file's size is required")
    body = await read_body(request) if request.can_read_body else {}
    given = body.get("file")
    meta: Json = given if isinstance(given, dict) else {}
    # google-genai sends the File's fields in snake case; the API takes both spellings.
    mime = request.headers.get("X-Goog-Upload-Header-Content-Type") or wire_field(meta, "mimeType")
    display = wire_field(meta, "displayName")
    stored = book.start(
        str(mime or "application/octet-stream"),
        int(size),
        display if isinstance(display, str) else None,
    )
    version = request.match_info["version"]
    url = f"{_root(request)}/upload/{version}/files?upload_id={stored.name.removeprefix('files/')}"
    response = json_response({})
    response.headers.update({"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})
    return response


async def _chunk(request: web.Request, stored: StoredFile, command: str) -> web.Response:
    commands = {part.strip() for part in command.split(",")}
    offset = request.headers.get("X-Goog-Upload-Offset", "")
    if "upload" not in commands or offset != str(len(stored.data)):
        raise BadRequest(f"* X-Goog-Upload-Offset: expected {len(stored.data)}")
    chunk = await request.read()
    if len(stored.data) + len(chunk) > stored.size:
        raise BadRequest(f"* the upload is longer than its declared {stored.size} bytes")
    stored.data.extend(chunk)
    if "finalize" not in commands:
        response = json_response({})
        response.headers["X-Goog-Upload-Status"] = "active"
        return response
    if len(stored.data) != stored.size:
        raise BadRequest(f"* the upload is shorter than its declared {stored.size} bytes")
    stored.done = True
    response = json_response({"file": stored.resource(_root(request))})
    response.headers["X-Goog-Upload-Status"] = "final"
    return response


async def get_file(request: web.Request) -> web.StreamResponse:
    """`GET files/{id}`: the File resource; `GET files/{id}:download?alt=media`: its bytes."""
    name, _, action = request.match_info["file_action"].partition(":")
    stored = request.app[FILES_KEY].get(f"files/{name}")
    if stored is None or not stored.done:
        return google_error(404, f"File files/{name} not found.")
    if action == "download":
        return web.Response(body=bytes(stored.data), content_type=stored.mime_type)
    if action:
        return google_error(404, f"Unknown method: {request.match_info['file_action']}")
    return json_response(stored.resource(_root(request)))


async def delete_file(request: web.Request) -> web.Response:
    """`DELETE files/{id}`: forget the file."""
    name = request.match_info["file_action"]
    if not request.app[FILES_KEY].delete(f"files/{name}"):
        return google_error(404, f"File files/{name} not found.")
    return json_response({})

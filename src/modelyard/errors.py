"""Every error modelyard raises on purpose, in one tree. No HTTP here: the API maps these.

ModelyardError
 ├── NotFound
 │    ├── PathNotFound          a path given by the user does not exist
 │    ├── ModelNotFound
 │    ├── AdapterNotFound
 │    ├── ComponentNotFound
 │    ├── RepoNotFound          no such repo, revision, file or quantization on the hub
 │    ├── DownloadNotFound
 │    ├── CreationNotFound
 │    ├── InstallNotFound
 │    └── KeyNotFound
 ├── Conflict
 │    ├── ModelExists           the name or the files are already in the library
 │    ├── AdapterExists
 │    ├── KeyExists
 │    ├── ModelLoaded           the model is loaded: unload it first
 │    ├── ModelNotLoaded        a request for a model that is not loaded (and autoload is off)
 │    ├── LoadRefused           the load rules or busy models stop a load
 │    ├── WontFit               the model needs more memory than is free
 │    ├── QueueFull             too many requests wait for this model
 │    ├── QueueTimeout          a request waited for an instance longer than the queue allows
 │    ├── QuotaExceeded         a load over the key's quota of loads for this period
 │    ├── NoSpace               the disk cannot take the download
 │    ├── InstallRunning        the backend is being installed already
 │    ├── DownloadActive        the download still runs: pause or cancel it first
 │    └── LastKey               the last key of a server on the network: it would open
 ├── InvalidInput
 │    ├── InvalidName
 │    ├── InvalidSettings
 │    ├── InvalidDesign         a new model's design, tokenizer or output that cannot be created
 │    ├── InvalidImport         the import request does not make sense (template, components, ...)
 │    ├── InvalidRef            a model reference that cannot be parsed
 │    ├── InvalidRequest        a request body an endpoint or engine cannot take (names the field)
 │    │    ├── RequestTooLarge  a body over the size limit, or a prompt longer than the context
 │    │    └── UnsupportedMediaType  a body that is not JSON (or, for image edits, multipart)
 │    └── UnsafePath            a remote file name that would escape the destination
 ├── ModelFileError            the files themselves are the problem
 │    ├── MalformedFile        bad magic, truncation, absurd counts, wrong value types
 │    ├── IncompleteModel      shards or index entries missing or inconsistent
 │    └── UnsupportedFormat
 ├── IncompatibleAdapter       a LoRA that does not fit its base model
 ├── HubError                  a model hub (Hugging Face, ModelScope, Ollama) or the download failed
 │    ├── HubAuthRequired      the repo is private or gated: a token is needed
 │    ├── HubUnavailable       the hub cannot be reached or keeps failing
 │    └── IntegrityError       a downloaded file's size or sha256 is wrong, again and again
 ├── EngineError               an engine process failed: would not start, crashed, is missing
 │    └── EngineUnavailable    no engine for this backend is installed
 ├── Unsupported               the backend cannot do what was asked (an option, an endpoint)
 ├── ChatTemplateMissing       chat on a model without a chat template
 ├── Unauthenticated           no API key, or one that is unknown, revoked or expired
 ├── Forbidden                 the request is known, and not allowed
 │    ├── ScopeDenied          the key's scope or models do not cover this
 │    ├── PathNotAllowed       a path outside the folders the server may read and write
 │    └── RequestRefused       a cross-site request, or a Host that is not this server
 ├── InsecureListen            the server would listen on the network without an API key
 └── ServerUnavailable         the CLI cannot reach the modelyard server
"""

from __future__ import annotations

from pathlib import Path


class ModelyardError(Exception):
    """Base of every deliberate modelyard error.

    ``message`` says what is wrong; ``hint`` says what to do about it; ``model``: the library
    model a refused request was for, where it was known (the metrics count it).
    """

    model: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class NotFound(ModelyardError):
    pass


class PathNotFound(NotFound):
    def __init__(self, path: Path | str) -> None:
        super().__init__(f"no such file or folder: {path}", hint="check the path")
        self.path = str(path)


class ModelNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no model named {name!r} in the library", hint="`modelyard ls` lists the models")
        self.name = name


class AdapterNotFound(NotFound):
    def __init__(self, model: str, adapter: str) -> None:
        super().__init__(f"model {model!r} has no adapter named {adapter!r}")


class ComponentNotFound(NotFound):
    def __init__(self, model: str, role: str) -> None:
        super().__init__(f"model {model!r} has no {role} component")


class RepoNotFound(NotFound):
    pass


class DownloadNotFound(NotFound):
    def __init__(self, job: int) -> None:
        super().__init__(f"no download with id {job}", hint="`modelyard downloads` lists them")


class CreationNotFound(NotFound):
    def __init__(self, job: int) -> None:
        super().__init__(f"no model creation with id {job}", hint="`modelyard create --list` lists them")


class InstallNotFound(NotFound):
    def __init__(self, job: int) -> None:
        super().__init__(f"no install with id {job}", hint="GET /api/installs lists them")


class ResponseNotFound(NotFound):
    def __init__(self, rid: str) -> None:
        super().__init__(
            f"no stored response {rid!r}",
            hint="responses are kept only when stored, for the key that made them, for MODELYARD_RESPONSES_KEEP days",
        )


class FileNotFound(NotFound):
    def __init__(self, fid: str) -> None:
        super().__init__(
            f"no file {fid!r}", hint="files belong to the key that uploaded them: GET /v1/files lists yours"
        )


class BatchNotFound(NotFound):
    def __init__(self, bid: str) -> None:
        super().__init__(
            f"no batch {bid!r}",
            hint="batches belong to the key that made them: `modelyard batches` lists them",
        )


class KeyNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no API key named {name!r}", hint="`modelyard keys ls` lists them")


class RouteNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no route named {name!r}", hint="`modelyard routes` lists them")


class Conflict(ModelyardError):
    pass


class KeyExists(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"an API key named {name!r} exists", hint="pick another name, or remove it first")


class ModelExists(Conflict):
    pass


class AdapterExists(Conflict):
    pass


class ModelLoaded(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"model {name!r} is loaded", hint=f"unload it first: `modelyard unload {name}`")


class ModelNotLoaded(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"model {name!r} is not loaded",
            hint=f"load it with `modelyard load {name}`, or turn autoload on: `modelyard edit {name} --autoload`",
        )


class LoadRefused(Conflict):
    pass


class WontFit(Conflict):
    pass


class QueueFull(Conflict):
    def __init__(self, name: str, limit: int) -> None:
        super().__init__(f"{limit} requests are already waiting for {name!r}", hint="retry in a few seconds")
        self.retry_after = 5


class OverShare(QueueFull):
    """A key holds its share of a queue's places while other keys wait too."""

    def __init__(self, name: str, account: str | None, waiting: int, limit: int, keys: int) -> None:
        who = f"the key {account!r}" if account is not None else "the local user"
        ModelyardError.__init__(
            self,
            f"{who} has {waiting} requests waiting for {name!r}: its share of the {limit} places "
            f"while {keys} keys wait",
            hint="send fewer at once; retry in a few seconds",
        )
        self.retry_after = 5


class QueueTimeout(Conflict):
    def __init__(self, name: str, seconds: float, expected: float | None = None) -> None:
        message = (
            f"no instance of {name!r} was free within {seconds:g} s"
            if expected is None
            else f"{name!r} is busy: a slot would be free in about {expected:.0f} s, past the {seconds:g} s limit"
        )
        super().__init__(message, hint="retry later, add replicas, or raise MODELYARD_QUEUE_TIMEOUT")
        self.retry_after = 5 if expected is None else max(1, min(60, round(expected - seconds)))


class QuotaExceeded(Conflict):
    pass


class NoSpace(Conflict):
    pass


class InstallRunning(Conflict):
    def __init__(self, backend: str) -> None:
        super().__init__(f"{backend} is being installed already", hint="wait for that install to end")


class LastKey(Conflict):
    def __init__(self, name: str, host: str) -> None:
        super().__init__(
            f"{name!r} is the last API key, and this server listens on {host}: without a key it "
            "would answer nobody on the network",
            hint="create another key first (`modelyard keys create NAME --scope admin`), or listen on 127.0.0.1",
        )


class DownloadActive(Conflict):
    pass


class FileInUse(Conflict):
    pass


class InvalidInput(ModelyardError):
    pass


class InvalidRef(InvalidInput):
    pass


class UnsafePath(InvalidInput):
    pass


class InvalidRequest(InvalidInput):
    def __init__(self, message: str, *, param: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.param = param


class RequestTooLarge(InvalidRequest):
    pass


class UnsupportedMediaType(InvalidRequest):
    pass


class InvalidName(InvalidInput):
    pass


class InvalidSettings(InvalidInput):
    pass


class InvalidDesign(InvalidInput):
    """Each problem is (field, message); ``param`` names the first field."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems), hint="fix these and try again")
        self.problems = problems
        self.param = problems[0][0] if problems else None


class InvalidImport(InvalidInput):
    pass


class InvalidSpec(InvalidInput):
    """A declarative spec that is not right: the message names the file, line and field."""


class ModelFileError(ModelyardError):
    """The model files themselves are the problem."""

    def __init__(self, path: Path | str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}", hint=hint)
        self.path = str(path)


class MalformedFile(ModelFileError):
    def __init__(self, path: Path | str, message: str, *, hint: str | None = None) -> None:
        super().__init__(path, message, hint=hint or "the file is damaged or incomplete: download it again")


class IncompleteModel(ModelFileError):
    pass


class UnsupportedFormat(ModelFileError):
    pass


class IncompatibleAdapter(ModelyardError):
    pass


class HubError(ModelyardError):
    pass


class HubAuthRequired(HubError):
    pass


class HubUnavailable(HubError):
    pass


class IntegrityError(HubError):
    pass


class EngineError(ModelyardError):
    """``log``: the end of the engine's log, which names the server's files: answered on the
    management API (admins) only."""

    def __init__(self, message: str, *, hint: str | None = None, log: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.log = log


class EngineUnavailable(EngineError):
    pass


class EngineBuilding(EngineUnavailable):
    """A backend's engine was not installed, and the load started its install (``job``)."""

    def __init__(self, backend: str, job: int) -> None:
        super().__init__(
            f"{backend} is not installed yet: modelyard is installing it now (install job {job}, a few minutes)",
            hint=f"load it again once that is done (`modelyard load` waits for it); its progress: GET /api/installs/{job}",
        )
        self.job = job


class NoWorker(EngineUnavailable):
    """No instance of a model has a place: none can serve it until a worker takes one."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(
            f"no instance of {name!r} can serve: {why}",
            hint="join a worker it fits on (`modelyard worker join`), or free memory on one",
        )


class Unsupported(ModelyardError):
    pass


class ChatTemplateMissing(ModelyardError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"model {name!r} has no chat template, so chat messages cannot be formatted for it",
            hint=(
                f"set one: `modelyard settings {name} --set chat_template=chatml` (a llama.cpp template "
                "name or a Jinja template), or send raw text to /v1/completions"
            ),
        )


class Unauthenticated(ModelyardError):
    def __init__(self, message: str = "this server needs an API key") -> None:
        super().__init__(
            message,
            hint="send `Authorization: Bearer KEY` (the CLI reads MODELYARD_API_KEY); "
            "`modelyard keys create NAME` makes one on the server's machine",
        )


class Forbidden(ModelyardError):
    pass


class ScopeDenied(Forbidden):
    pass


class PathNotAllowed(Forbidden):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"{path} is outside the folders this server may use",
            hint="add its folder to MODELYARD_ALLOWED_DIRS on the server",
        )


class RequestRefused(Forbidden):
    pass


class InsecureListen(ModelyardError):
    pass


class ServiceError(ModelyardError):
    """systemd refused to install or start the service."""


class ServerUnavailable(ModelyardError):
    def __init__(self, url: str) -> None:
        super().__init__(
            f"the modelyard server is not running at {url}",
            hint="start it with `modelyard serve`, or set MODELYARD_URL",
        )
        self.url = url

"""Object storage, resourceVersions, watch history and garbage collection for the fake Kubernetes API server.

Why a single global store under one lock: a real apiserver gives every write one etcd revision from a single counter,
so a list of pods and a list of jobs taken at the same moment have comparable ``resourceVersion`` s, and a watch
started "from the list's resourceVersion" sees exactly the writes that followed.  The fake models that with one
``RLock``, one monotonically increasing integer (sent as a string, like etcd revisions) and one bounded history of
change events.  Watchers block on a ``Condition`` tied to that lock, so an idle watch costs no CPU.

What it models, and how faithfully:

* create/get/list/update/patch/delete/deletecollection with the apiserver's ``Status`` errors (404 NotFound,
  409 AlreadyExists / Conflict, 422 Invalid, 400 BadRequest, 415 for strategic merge on custom resources);
* server-set metadata: ``uid``, ``creationTimestamp``, ``resourceVersion``, ``generation`` (bumped when anything but
  metadata/status changes), ``generateName``; a no-op update keeps the resourceVersion and emits no watch event;
* ``/status`` subresources: writes to the main resource keep the old status; writes to ``/status`` change only status
  for custom resources, and status plus metadata (not ``ownerReferences``/``deletionTimestamp``) for pods and Jobs;
* finalizers and ``deletionTimestamp`` (an object with finalizers is only marked, and disappears when its last
  finalizer is removed), ``propagationPolicy`` ``Background``/``Foreground``/``Orphan`` with ownerReference garbage
  collection across all kinds, and the per-kind default (``Orphan`` for ``batch/v1`` Jobs);
* namespaces: objects can only be created in an existing namespace; a new namespace gets a ``default``
  ServiceAccount and the ``kube-root-ca.crt`` ConfigMap, as the controllers of a real cluster add; deleting it
  deletes its contents;
* watch history with simulated compaction (``history_limit`` events, ``compact``), consistent paginated lists
  (``limit``/``continue`` pages come from a snapshot, which expires with compaction like etcd's);
* a few validations that catch real executor bugs: DNS-1123 names, label keys/values (so a 64-character
  ``job-name`` label fails as it would on a cluster), pod containers/images/restartPolicy, Job template restartPolicy,
  pod spec and Job template immutability.  Like a real apiserver, ``pods/status`` accepts any phase transition (the
  rule that a terminal phase is final is the kubelet's, not the apiserver's).

Admission, as on a real cluster: a pod naming a missing ServiceAccount gets 403, and so does an object past a
ResourceQuota's object count (``exceeded quota``).

What it does not model: other admission (LimitRange, PSA, webhooks, CPU/memory quotas), OpenAPI schema validation of
built-in kinds (custom objects are checked against their CRD: ``fake_schema``), server-side apply field ownership
(apply is a merge patch that can create), ``managedFields``, graceful pod deletion (a pod without finalizers is
marked with a ``deletionTimestamp`` and grace 0 -- one MODIFIED event -- then removed at once, as an unscheduled pod
is on a real cluster), asynchronous garbage collection (dependents are deleted in the same request), and historical
lists (a list at an older, retained ``resourceVersionMatch`` version serves the latest state; see
``fake_apiserver``).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import random
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from odin.testing.kube import fake_schema
from odin.testing.kube.fake_faults import reason_for
from odin.testing.kube.fake_patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from odin.testing.kube.fake_resources import (
    CONFIGMAPS,
    JOBS,
    NAMESPACES,
    NODES,
    PODS,
    RESOURCEQUOTAS,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
    ResourceKind,
    is_dns1123_label,
    validate_label_key,
    validate_label_value,
    validate_object_name,
)
from odin.testing.kube.fake_selectors import FieldSelector, LabelSelector

JsonObj = dict[str, Any]

TERMINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})
# Object-count quota names that predate `count/<resource>` (ResourceQuota `spec.hard`).
_LEGACY_QUOTA_NAMES = frozenset({"pods", "configmaps", "secrets", "services", "persistentvolumeclaims"})
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's alphabet: no vowels, no look-alikes
_SNAPSHOT_LIMIT = 256


def now_rfc3339() -> str:
    """A ``metav1.Time`` string (second precision, UTC)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339_nano() -> str:
    """A ``metav1.MicroTime`` / log-timestamp string."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(_GENERATE_ALPHABET) for _ in range(length))  # noqa: S311 (names, not secrets)


class ApiError(Exception):
    """An error answer with a ``Status`` body, raised anywhere below the HTTP layer."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or reason_for(code)
        self.details = dict(details) if details is not None else None
        self.headers = dict(headers or {})

    def status(self) -> JsonObj:
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> JsonObj:
    """A ``metav1.Status`` failure body, field for field as the apiserver sends it."""
    body: JsonObj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = dict(details)
    body["code"] = code
    return body


def success_status(kind: ResourceKind, name: str, uid: str | None = None, code: int | None = None) -> JsonObj:
    details: JsonObj = {"name": name, "kind": kind.plural}
    if kind.group:
        details["group"] = kind.group
    if uid:
        details["uid"] = uid
    body: JsonObj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
    if code is not None:
        body["code"] = code
    return body


def _details(kind: ResourceKind, name: str | None) -> JsonObj:
    details: JsonObj = {"kind": kind.plural}
    if name is not None:
        details["name"] = name
    if kind.group:
        details["group"] = kind.group
    return details


def not_found(kind: ResourceKind, name: str) -> ApiError:
    return ApiError(404, f'{kind.qualified_resource} "{name}" not found', details=_details(kind, name))


def already_exists(kind: ResourceKind, name: str) -> ApiError:
    return ApiError(
        409, f'{kind.qualified_resource} "{name}" already exists', reason="AlreadyExists", details=_details(kind, name)
    )


def conflict(kind: ResourceKind, name: str, detail: str | None = None) -> ApiError:
    text = detail or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {kind.qualified_resource} "{name}": {text}',
        reason="Conflict",
        details=_details(kind, name),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def expired(message: str) -> ApiError:
    return ApiError(410, message, reason="Expired")


@dataclass(frozen=True)
class Cause:
    field: str
    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueForbidden, FieldValueNotSupported
    message: str


def invalid(kind: ResourceKind, name: str, causes: list[Cause]) -> ApiError:
    qualified_kind = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    parts = [f"{c.field}: {c.message}" for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details: JsonObj = {
        "name": name,
        "kind": kind.kind,
        "causes": [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes],
    }
    if kind.group:
        details["group"] = kind.group
    return ApiError(422, f'{qualified_kind} "{name}" is invalid: {summary}', reason="Invalid", details=details)


def _invalid_value(field: str, value: Any, problem: str) -> Cause:
    return Cause(field, "FieldValueInvalid", f"Invalid value: {json.dumps(value)}: {problem}")


def _required(field: str, detail: str = "") -> Cause:
    return Cause(field, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


_ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")


def _default_node_status(node: JsonObj) -> None:
    """The apiserver's defaulting of a Node (``SetDefaults_NodeStatus``): no ``allocatable`` means all the capacity."""
    status = node.get("status")
    if not isinstance(status, dict):
        node["status"] = status = {}
    capacity = status.get("capacity")
    if status.get("allocatable") is None and isinstance(capacity, dict):
        status["allocatable"] = dict(capacity)


def _validate_endpoint_slice(obj: JsonObj) -> list[Cause]:
    """The apiserver's EndpointSlice rules that a hand-written slice trips: `addressType` required and known, every
    endpoint with 1 to 100 addresses, ports numbered 1-65535 (validation.ValidateEndpointSliceCreate)."""
    address_type = obj.get("addressType")
    if not address_type:
        return [_required("addressType")]
    if address_type not in _ADDRESS_TYPES:
        return [Cause("addressType", "FieldValueNotSupported", f'Unsupported value: "{address_type}"')]
    causes: list[Cause] = []
    for i, endpoint in enumerate(obj.get("endpoints") or []):
        addresses = endpoint.get("addresses") if isinstance(endpoint, dict) else None
        if not addresses:
            causes.append(_required(f"endpoints[{i}].addresses", "must contain at least 1 address"))
        elif len(addresses) > 100:
            causes.append(Cause(f"endpoints[{i}].addresses", "FieldValueTooMany", "must have at most 100 items"))
    for i, port in enumerate(obj.get("ports") or []):
        number = port.get("port") if isinstance(port, dict) else None
        if number is not None and not (isinstance(number, int) and 1 <= number <= 65535):
            causes.append(_invalid_value(f"ports[{i}].port", number, "must be between 1 and 65535, inclusive"))
    return causes


def _meta(obj: Mapping[str, Any]) -> JsonObj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def owner_uids(obj: Mapping[str, Any]) -> list[str]:
    refs = _meta(obj).get("ownerReferences") or []
    return [str(r.get("uid")) for r in refs if isinstance(r, Mapping) and r.get("uid")]


def controller_owner(obj: Mapping[str, Any]) -> JsonObj | None:
    for ref in _meta(obj).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


@dataclass(frozen=True)
class StoredEvent:
    """One change in the global history.  For DELETED, ``obj`` is the last state stamped with the deletion's
    resourceVersion, as the apiserver sends it."""

    rv: int
    type: str
    kind: ResourceKind
    namespace: str
    name: str
    obj: JsonObj
    prev: JsonObj | None


Listener = Callable[[StoredEvent], None]


@dataclass(frozen=True)
class ListPage:
    items: list[JsonObj]
    resource_version: int
    continue_token: str | None
    remaining: int | None


class Store:
    """The fake's etcd + registry.  Every public method takes and releases ``lock`` itself; objects it hands out
    are never mutated afterwards (every write stores a fresh dict), so callers may serialise them without copying."""

    def __init__(self, *, history_limit: int = 10_000) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.kinds: dict[tuple[str, str, str], ResourceKind] = {}
        # CRD schemas by kind; `schema_loader` finds one for a kind on first use (None: the kind is not checked).
        self.schemas: dict[tuple[str, str, str], Mapping[str, Any] | None] = {}
        self.schema_loader: Callable[[ResourceKind], Mapping[str, Any] | None] | None = None
        self._objects: dict[tuple[str, str, str], dict[tuple[str, str], JsonObj]] = {}
        # Indexes over `_objects`, kept by `_index` on every store and removal, so that a selector or an owner's
        # dependents cost what they match, not every object: the benchmarks hold 10,000 pods, and a deletecollection
        # that scanned them all (under the one lock) held every other request up for a second.
        self._by_label: dict[tuple[str, str, str], dict[tuple[str, str], dict[tuple[str, str], None]]] = {}
        self._by_owner: dict[str, dict[tuple[tuple[str, str, str], tuple[str, str]], None]] = {}
        self._uids: set[str] = set()
        self.rv = 0
        self.compacted_rv = 0
        self.history_limit = history_limit
        self._history: deque[StoredEvent] = deque()
        self._listeners: list[Listener] = []
        self._pending: deque[StoredEvent] = deque()
        self._dispatching = False
        self._deferred_policy: dict[str, str] = {}
        self._snapshots: OrderedDict[str, tuple[int, list[JsonObj]]] = OrderedDict()
        # Pod logs: (namespace, pod, container) -> [(timestamp, line-with-newline)]
        self.logs: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        self.log_version = 0
        self._cluster_ip = 10

    # ------------------------------------------------------------------------------------------------------ kinds
    def register(self, kind: ResourceKind, schema: Mapping[str, Any] | None = None) -> None:
        """Serve ``kind``; a custom kind with its CRD's ``openAPIV3Schema`` gets its objects pruned and validated."""
        with self.lock:
            self.kinds[kind.key] = kind
            self._objects.setdefault(kind.key, {})
            if schema is not None:
                self.schemas[kind.key] = schema

    def kind_for(self, group: str, version: str, plural: str) -> ResourceKind | None:
        return self.kinds.get((group, version, plural))

    def add_listener(self, listener: Listener) -> None:
        with self.lock:
            self._listeners.append(listener)

    # ----------------------------------------------------------------------------------------------------- reading
    def get(self, kind: ResourceKind, namespace: str | None, name: str) -> JsonObj:
        obj = self.get_or_none(kind, namespace, name)
        if obj is None:
            raise not_found(kind, name)
        return obj

    def get_or_none(self, kind: ResourceKind, namespace: str | None, name: str) -> JsonObj | None:
        with self.lock:
            return self._objects[kind.key].get(((namespace or "") if kind.namespaced else "", name))

    def objects(self, kind: ResourceKind, namespace: str | None = None) -> list[JsonObj]:
        """All objects of ``kind`` (in ``namespace`` if given), in etcd key order."""
        with self.lock:
            bucket = self._objects[kind.key]
            return [bucket[k] for k in sorted(bucket) if namespace is None or k[0] == namespace]

    def list_objects(
        self,
        kind: ResourceKind,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListPage:
        with self.lock:
            if continue_token:
                snap_id, start = self._decode_continue(continue_token)
                snapshot = self._snapshots.get(snap_id)
                if snapshot is None or snapshot[0] < self.compacted_rv:
                    raise expired(
                        "The provided continue parameter is too old to display a consistent list result. You can "
                        "start a new list without the continue parameter."
                    )
                list_rv, matching = snapshot
                items = matching[start:]
            else:
                list_rv = self.rv
                matching = [
                    o for o in self._candidates(kind, namespace, labels) if labels.matches(_meta(o).get("labels"))
                ]
                matching = [o for o in matching if fields.matches(o)]
                snap_id, start, items = "", 0, matching
            if not limit or limit >= len(items):
                return ListPage(items, list_rv, None, None)
            if not snap_id:
                snap_id = uuid.uuid4().hex
                self._snapshots[snap_id] = (list_rv, matching)
                while len(self._snapshots) > _SNAPSHOT_LIMIT:
                    self._snapshots.popitem(last=False)
            page = items[:limit]
            token = self._encode_continue(snap_id, start + limit, list_rv)
            remaining = None if not (labels.empty and fields.empty) else len(items) - limit
            return ListPage(page, list_rv, token, remaining)

    def _candidates(self, kind: ResourceKind, namespace: str | None, labels: LabelSelector) -> list[JsonObj]:
        """The objects `labels` may match, in etcd key order: those the label index gives for its narrowest `=`/`in`
        requirement, or every object of the kind when it has none."""
        index = self._by_label.get(kind.key, {})
        narrowest: list[dict[tuple[str, str], None]] | None = None
        for requirement in labels.requirements:
            if requirement.op in ("=", "in"):
                sets = [index.get((requirement.key, value), {}) for value in requirement.values]
                if narrowest is None or sum(map(len, sets)) < sum(map(len, narrowest)):
                    narrowest = sets  # sized before they are merged: `managed-by=odin` names every pod
        if narrowest is None:
            return self.objects(kind, namespace)
        bucket = self._objects[kind.key]
        keys = sorted({k for keys in narrowest for k in keys})
        return [bucket[k] for k in keys if namespace is None or k[0] == namespace]

    @staticmethod
    def _encode_continue(snap_id: str, start: int, rv: int) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start, "snap": snap_id})
        return base64.urlsafe_b64encode(raw.encode()).decode()

    @staticmethod
    def _decode_continue(token: str) -> tuple[str, int]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            return str(data["snap"]), int(data["start"])
        except (ValueError, KeyError, TypeError):
            raise bad_request("continue key is not valid: illegal base64 data or incorrect format") from None

    # --------------------------------------------------------------------------------------------------- writing
    def _bucket_key(self, kind: ResourceKind, obj: Mapping[str, Any]) -> tuple[str, str]:
        meta = _meta(obj)
        return ((meta.get("namespace") or "") if kind.namespaced else "", str(meta.get("name")))

    def _put(self, kind: ResourceKind, obj: JsonObj, event_type: str, prev: JsonObj | None) -> JsonObj:
        """Store ``obj`` with a new resourceVersion, record the event, run controllers; returns ``obj`` as stored."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = self._bucket_key(kind, obj)
        bucket = self._objects[kind.key]
        old = bucket.get(key)
        bucket[key] = obj
        self._index(kind, key, old, obj)
        self._emit(StoredEvent(self.rv, event_type, kind, *self._bucket_key(kind, obj), obj, prev))
        return obj

    def _emit(self, event: StoredEvent) -> None:
        self._history.append(event)
        excess = len(self._history) - self.history_limit
        for _ in range(max(0, excess)):
            self.compacted_rv = self._history.popleft().rv
        self._pending.append(event)
        self.changed.notify_all()
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                pending = self._pending.popleft()
                for listener in list(self._listeners):
                    listener(pending)
        finally:
            self._dispatching = False

    def events_after(self, rv: int) -> list[StoredEvent]:
        """History events with a resourceVersion above ``rv`` (caller holds ``lock`` and has checked expiry)."""
        out: list[StoredEvent] = []
        for event in reversed(self._history):
            if event.rv <= rv:
                break
            out.append(event)
        out.reverse()
        return out

    def compact(self, *, keep_last: int = 0, bump: bool = True) -> None:
        """Simulate etcd compaction: forget all but the last ``keep_last`` events.  With ``bump`` the global
        resourceVersion advances (as unrelated writes do on any real cluster), so *every* resourceVersion handed out
        before this call is too old to watch from, while a fresh list gives a usable one."""
        with self.lock:
            while len(self._history) > keep_last:
                self.compacted_rv = self._history.popleft().rv
            if bump:
                self.rv += 1
                if keep_last == 0:
                    self.compacted_rv = self.rv
            self._snapshots.clear()
            self.changed.notify_all()

    def create(
        self,
        kind: ResourceKind,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        name: str | None = None,
        field_validation: str | None = None,
        warnings: list[str] | None = None,
    ) -> JsonObj:
        with self.lock:
            if not isinstance(body, dict):
                raise bad_request(f"Object '{kind.kind}' is invalid: the body must be a JSON object")
            obj = copy.deepcopy(body)
            self._check_type(kind, obj)
            meta = obj.get("metadata")
            if meta is None:
                meta = obj["metadata"] = {}
            if not isinstance(meta, dict):
                raise bad_request("metadata must be an object")
            if name and not meta.get("name"):
                meta["name"] = name
            if kind.namespaced:
                if meta.get("namespace") not in (None, "", namespace):
                    raise bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request"
                    )
                meta["namespace"] = namespace
                if namespace is None or self.get_or_none(NAMESPACES, None, namespace) is None:
                    raise not_found(NAMESPACES, namespace or "")
            else:
                meta.pop("namespace", None)
            if not meta.get("name"):
                generate = meta.get("generateName")
                if not generate:
                    raise invalid(kind, "", [_required("metadata.name", "name or generateName is required")])
                for _ in range(100):
                    candidate = f"{generate}{random_suffix()}"
                    if self.get_or_none(kind, namespace, candidate) is None:
                        meta["name"] = candidate
                        break
            name = str(meta["name"])
            problem = validate_object_name(name, kind)
            if problem:
                raise invalid(kind, name, [_invalid_value("metadata.name", name, problem)])
            if self.get_or_none(kind, namespace, name) is not None:
                raise already_exists(kind, name)
            for server_field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
                meta.pop(server_field, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if kind.has_generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            causes = _validate_metadata(meta)
            causes += self._prepare_create(kind, obj)
            if causes:
                raise invalid(kind, name, causes)
            self._check_schema(kind, obj, field_validation, warnings)
            self._admit(kind, obj)
            if dry_run:
                return obj
            stored = self._put(kind, obj, "ADDED", None)
            if kind.key == NAMESPACES.key:
                self._populate_namespace(name)
            return stored

    def _check_type(self, kind: ResourceKind, obj: JsonObj) -> None:
        api_version, obj_kind = obj.get("apiVersion"), obj.get("kind")
        if api_version not in (None, "", kind.api_version):
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({kind.api_version})"
            )
        if obj_kind not in (None, "", kind.kind):
            raise bad_request(f"the kind in the data ({obj_kind}) does not match the expected kind ({kind.kind})")
        obj["apiVersion"] = kind.api_version
        obj["kind"] = kind.kind

    def _populate_namespace(self, namespace: str) -> None:
        """What the serviceaccount and root-CA publisher controllers add to every new namespace."""
        self.create(SERVICEACCOUNTS, namespace, {"metadata": {"name": "default"}})
        self.create(
            CONFIGMAPS,
            namespace,
            {
                "metadata": {"name": "kube-root-ca.crt", "annotations": {"kubernetes.io/description": "fake CA"}},
                "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n"},
            },
        )

    def update(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str | None = None,
        warnings: list[str] | None = None,
    ) -> JsonObj:
        with self.lock:
            old = self.get(kind, namespace, name)
            if not isinstance(body, dict):
                raise bad_request("the body must be a JSON object")
            new = copy.deepcopy(body)
            self._check_type(kind, new)
            meta = new.setdefault("metadata", {})
            if meta.get("name") not in (None, name):
                raise bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
                )
            if kind.namespaced and meta.get("namespace") not in (None, "", namespace):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            sent_rv = meta.get("resourceVersion")
            if sent_rv not in (None, "") and str(sent_rv) != _meta(old)["resourceVersion"]:
                raise conflict(kind, name)
            return self._apply_write(
                kind, old, new, subresource=subresource, dry_run=dry_run, field_validation=field_validation,
                warnings=warnings,
            )  # fmt: skip

    def patch(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        raw_body: bytes,
        content_type: str,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
        field_validation: str | None = None,
        warnings: list[str] | None = None,
    ) -> tuple[JsonObj, bool]:
        """Apply a PATCH; returns ``(object, created)`` (``created`` only for server-side apply)."""
        media = content_type.split(";", maxsplit=1)[0].strip().lower()
        with self.lock:
            if media == "application/apply-patch+yaml":
                if not field_manager:
                    raise bad_request("PATCH, application/apply-patch+yaml requests must supply fieldManager parameter")
                try:
                    doc = yaml.safe_load(raw_body.decode() or "{}")
                except yaml.YAMLError as exc:
                    raise bad_request(f"error decoding YAML: {exc}") from None
                if self.get_or_none(kind, namespace, name) is None:
                    if subresource:
                        raise not_found(kind, name)
                    created = self.create(
                        kind, namespace, doc, dry_run=dry_run, name=name, field_validation=field_validation,
                        warnings=warnings,
                    )  # fmt: skip
                    return created, True
                media = "application/merge-patch+json"
                raw_body = json.dumps(doc).encode()
            old = self.get(kind, namespace, name)
            try:
                doc = json.loads(raw_body or b"null")
            except ValueError as exc:
                raise bad_request(f"error decoding patch: {exc}") from None
            try:
                if media == "application/json-patch+json":
                    patched = json_patch(old, doc)
                elif media == "application/merge-patch+json":
                    if not isinstance(doc, dict):
                        raise bad_request("a merge patch must be a JSON object")
                    patched = merge_patch(old, doc)
                elif media == "application/strategic-merge-patch+json":
                    if kind.custom:
                        raise ApiError(
                            415,
                            "the body of the request was in an unknown format - accepted media types include: "
                            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                        )
                    if not isinstance(doc, dict):
                        raise bad_request("a strategic merge patch must be a JSON object")
                    patched = strategic_merge_patch(old, doc)
                else:
                    smp = "" if kind.custom else ", application/strategic-merge-patch+json"
                    raise ApiError(
                        415,
                        f"the body of the request was in an unknown format - accepted media types include: "
                        f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{smp}",
                    )
            except PatchError as exc:
                raise ApiError(422, str(exc), reason="Invalid") from None
            if not isinstance(patched, dict):
                raise ApiError(422, "the patched object is not a JSON object", reason="Invalid")
            patched_meta = patched.setdefault("metadata", {})
            patched_rv = patched_meta.get("resourceVersion")
            if patched_rv not in (None, "") and str(patched_rv) != _meta(old)["resourceVersion"]:
                raise conflict(kind, name)
            patched_meta["name"] = name
            if kind.namespaced:
                patched_meta["namespace"] = namespace
            patched["apiVersion"], patched["kind"] = kind.api_version, kind.kind
            written = self._apply_write(
                kind, old, patched, subresource=subresource, dry_run=dry_run, field_validation=field_validation,
                warnings=warnings,
            )  # fmt: skip
            return written, False

    def _apply_write(
        self,
        kind: ResourceKind,
        old: JsonObj,
        new: JsonObj,
        *,
        subresource: str | None,
        dry_run: bool,
        field_validation: str | None = None,
        warnings: list[str] | None = None,
    ) -> JsonObj:
        old_meta = _meta(old)
        if subresource == "status":
            new = _status_write(kind, old, new)
            if kind.key == NODES.key:
                _default_node_status(new)  # defaulting runs on every write, as the kubelet's status updates see
        elif subresource is not None:
            raise ApiError(405, f"{subresource} does not support this method", reason="MethodNotAllowed")
        elif "status" in kind.subresources:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        meta = new.setdefault("metadata", {})
        for server_field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if server_field in old_meta:
                meta[server_field] = old_meta[server_field]
            else:
                meta.pop(server_field, None)
        meta["name"] = old_meta["name"]
        if kind.namespaced:
            meta["namespace"] = old_meta.get("namespace")
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if kind.has_generation:
            meta["generation"] = old_meta.get("generation", 1)
            if _spec_part(old) != _spec_part(new):
                meta["generation"] = int(meta["generation"]) + 1
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise invalid(
                    kind,
                    old_meta["name"],
                    [
                        Cause(
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            "Forbidden: no new finalizers can be added if the object is being deleted",
                        )
                    ],
                )
        causes = _validate_metadata(meta) + self._validate_update(kind, old, new, subresource)
        if causes:
            raise invalid(kind, old_meta["name"], causes)
        self._check_schema(kind, new, field_validation, warnings)
        if new == old:
            return old  # no-op: same resourceVersion, no watch event (as the apiserver does)
        if dry_run:
            return new
        if old_meta.get("deletionTimestamp") and not meta.get("finalizers"):
            meta.pop("finalizers", None)
            return self._remove(kind, new, self._deferred_policy.pop(old_meta["uid"], "Background"))
        return self._put(kind, new, "MODIFIED", old)

    # -------------------------------------------------------------------------------------------------- deleting
    def delete(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        precondition_uid: str | None = None,
        precondition_rv: str | None = None,
        dry_run: bool = False,
    ) -> tuple[JsonObj, int]:
        """Delete one object; returns ``(response body, HTTP status)`` as the apiserver would."""
        with self.lock:
            old = self.get(kind, namespace, name)
            meta = _meta(old)
            if precondition_uid and precondition_uid != meta["uid"]:
                raise conflict(
                    kind,
                    name,
                    f"Precondition failed: UID in precondition: {precondition_uid}, UID in object meta: {meta['uid']}",
                )
            if precondition_rv and precondition_rv != meta["resourceVersion"]:
                raise conflict(
                    kind,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {precondition_rv}, ResourceVersion in "
                    f"object meta: {meta['resourceVersion']}",
                )
            policy = propagation or kind.default_propagation
            if policy not in ("Background", "Foreground", "Orphan"):
                raise invalid(
                    kind,
                    name,
                    [
                        Cause(
                            "propagationPolicy",
                            "FieldValueNotSupported",
                            f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
                        )
                    ],
                )
            if dry_run:
                return old, 200
            if meta.get("deletionTimestamp"):
                return old, 200  # already being deleted: waiting for finalizers
            if policy == "Orphan":
                self._orphan_dependents(meta["uid"])
            if kind.key == NAMESPACES.key:
                return self._delete_namespace(old), 200
            if policy == "Foreground":
                marked = self._mark_deleting(kind, old, extra_finalizer="foregroundDeletion")
                self._collect_dependents(meta["uid"], "Foreground")
                current = self.get(kind, namespace, name)
                finalizers = [f for f in _meta(current).get("finalizers", []) if f != "foregroundDeletion"]
                updated = copy.deepcopy(current)
                updated["metadata"]["finalizers"] = finalizers
                self._apply_write(kind, current, updated, subresource=None, dry_run=False)
                return marked, 200
            if meta.get("finalizers"):
                self._deferred_policy[meta["uid"]] = policy
                return self._mark_deleting(kind, old), 200
            if kind.key == PODS.key:
                # A pod is first marked (deletionTimestamp, grace 0: nothing runs it) and then removed, so watchers
                # see MODIFIED then DELETED, as kube-apiserver v1.36 was seen to send (issue 14).
                old = self._mark_deleting(kind, old)
            removed = self._remove(kind, old, policy)
            if kind.return_deleted_object:
                return removed, 200
            return success_status(kind, name, meta["uid"]), 200

    def delete_collection(
        self,
        kind: ResourceKind,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        *,
        propagation: str | None = None,
        dry_run: bool = False,
    ) -> JsonObj:
        """Delete every matching object, each exactly as ``delete`` would (a pod: MODIFIED with its
        deletionTimestamp, then DELETED; propagation and finalizers apply). Answers, as kube-apiserver's generic
        registry does, the list of the objects it deleted (``<Kind>List``), as they were listed."""
        with self.lock:
            page = self.list_objects(kind, namespace, labels, fields)
            deleted: list[JsonObj] = []
            for obj in page.items:
                meta = _meta(obj)
                if self.get_or_none(kind, meta.get("namespace"), meta["name"]) is not None:
                    self.delete(kind, meta.get("namespace"), meta["name"], propagation=propagation, dry_run=dry_run)
                    deleted.append(copy.deepcopy(obj))
            return {
                "kind": kind.list_kind,
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(page.resource_version)},
                "items": deleted,
            }

    def _mark_deleting(self, kind: ResourceKind, obj: JsonObj, extra_finalizer: str | None = None) -> JsonObj:
        marked = copy.deepcopy(obj)
        meta = marked["metadata"]
        meta["deletionTimestamp"] = now_rfc3339()
        meta["deletionGracePeriodSeconds"] = 0
        if extra_finalizer and extra_finalizer not in meta.setdefault("finalizers", []):
            meta["finalizers"].append(extra_finalizer)
        return self._put(kind, marked, "MODIFIED", obj)

    def _remove(self, kind: ResourceKind, obj: JsonObj, policy: str) -> JsonObj:
        key = self._bucket_key(kind, obj)
        removed = self._objects[kind.key].pop(key, None)
        if removed is None:
            return obj
        self._index(kind, key, removed, None)
        self.rv += 1
        final = copy.deepcopy(obj)
        final["metadata"]["resourceVersion"] = str(self.rv)
        if kind.key == PODS.key:
            for log_key in [k for k in self.logs if k[:2] == key]:
                del self.logs[log_key]
            self.log_version += 1
        self._emit(StoredEvent(self.rv, "DELETED", kind, key[0], key[1], final, obj))
        if policy in ("Background", "Foreground"):
            self._collect_dependents(_meta(obj)["uid"], "Background")
        return final

    def _index(self, kind: ResourceKind, key: tuple[str, str], old: JsonObj | None, new: JsonObj | None) -> None:
        """Keep the label, owner and uid indexes true after `old` (at `key`) was replaced by `new` (None: removed)."""
        labels = self._by_label.setdefault(kind.key, {})
        for obj, add in ((old, False), (new, True)):
            if obj is None:
                continue
            meta = _meta(obj)
            for pair in (meta.get("labels") or {}).items():
                if add:
                    labels.setdefault(pair, {})[key] = None
                elif (keys := labels.get(pair)) is not None:
                    keys.pop(key, None)
                    if not keys:
                        del labels[pair]
            for owner in owner_uids(obj):
                if add:
                    self._by_owner.setdefault(owner, {})[(kind.key, key)] = None
                elif (dependents := self._by_owner.get(owner)) is not None:
                    dependents.pop((kind.key, key), None)
                    if not dependents:
                        del self._by_owner[owner]
            if meta.get("uid"):
                (self._uids.add if add else self._uids.discard)(str(meta["uid"]))

    def _dependents(self, uid: str) -> list[tuple[ResourceKind, JsonObj]]:
        """Objects with an ownerReference to `uid`, kind by kind in the order the kinds were registered."""
        order = {kind_key: i for i, kind_key in enumerate(self._objects)}
        found: list[tuple[ResourceKind, JsonObj]] = []
        for kind_key, key in sorted(self._by_owner.get(uid, {}), key=lambda dependent: order[dependent[0]]):
            found.append((self.kinds[kind_key], self._objects[kind_key][key]))
        return found

    def _live_uids(self) -> set[str]:
        return self._uids

    def _collect_dependents(self, uid: str, policy: str) -> None:
        """The garbage collector: delete dependents whose owners are all gone; drop dangling references."""
        for kind, dependent in self._dependents(uid):
            meta = _meta(dependent)
            current = self.get_or_none(kind, meta.get("namespace"), meta["name"])
            if current is None or _meta(current).get("uid") != meta["uid"]:
                continue
            live = self._live_uids()
            remaining = [u for u in owner_uids(current) if u != uid and u in live]
            if remaining:
                self._drop_owner_ref(kind, current, uid)
            elif not _meta(current).get("deletionTimestamp"):
                self.delete(kind, meta.get("namespace"), meta["name"], propagation=policy)

    def _drop_owner_ref(self, kind: ResourceKind, obj: JsonObj, uid: str) -> None:
        updated = copy.deepcopy(obj)
        refs = [r for r in updated["metadata"].get("ownerReferences", []) if r.get("uid") != uid]
        if refs:
            updated["metadata"]["ownerReferences"] = refs
        else:
            updated["metadata"].pop("ownerReferences", None)
        self._apply_write(kind, obj, updated, subresource=None, dry_run=False)

    def _orphan_dependents(self, uid: str) -> None:
        for kind, dependent in self._dependents(uid):
            self._drop_owner_ref(kind, dependent, uid)

    def _delete_namespace(self, ns_obj: JsonObj) -> JsonObj:
        name = _meta(ns_obj)["name"]
        marked = copy.deepcopy(ns_obj)
        marked["metadata"]["deletionTimestamp"] = now_rfc3339()
        marked["status"] = {"phase": "Terminating"}
        marked = self._put(NAMESPACES, marked, "MODIFIED", ns_obj)
        for key in list(self._objects):
            kind = self.kinds[key]
            if not kind.namespaced:
                continue
            for obj in self.objects(kind, name):
                current = self.get_or_none(kind, name, _meta(obj)["name"])
                if current is None:
                    continue
                if _meta(current).get("finalizers"):
                    stripped = copy.deepcopy(current)
                    stripped["metadata"]["finalizers"] = []
                    self._apply_write(kind, current, stripped, subresource=None, dry_run=False)
                if self.get_or_none(kind, name, _meta(obj)["name"]) is not None:
                    self.delete(kind, name, _meta(obj)["name"], propagation="Background")
        self._remove(NAMESPACES, marked, "Orphan")
        return marked

    # ------------------------------------------------------------------------------------------ subresource verbs
    def bind(self, namespace: str, name: str, body: Any) -> JsonObj:
        """``POST pods/{name}/binding``: what the scheduler does."""
        with self.lock:
            pod = self.get(PODS, namespace, name)
            target = body.get("target") if isinstance(body, dict) else None
            node = target.get("name") if isinstance(target, dict) else None
            if not node:
                raise invalid(PODS, name, [_required("target.name")])
            if pod.get("spec", {}).get("nodeName"):
                raise conflict(PODS, name, f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"')
            if _meta(pod).get("deletionTimestamp"):
                raise conflict(PODS, name, f"pod {name} is being deleted, cannot be assigned to a host")
            bound = copy.deepcopy(pod)
            bound["spec"]["nodeName"] = node
            status = bound.setdefault("status", {})
            conditions = [c for c in status.get("conditions", []) if c.get("type") != "PodScheduled"]
            conditions.append(
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
            )
            status["conditions"] = conditions
            self._put(PODS, bound, "MODIFIED", pod)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def append_log(self, namespace: str, pod: str, container: str, text: str, *, replace: bool = False) -> None:
        with self.lock:
            key = (namespace, pod, container)
            lines = [] if replace else self.logs.get(key, [])
            for line in text.splitlines(keepends=True):
                lines.append((now_rfc3339_nano(), line if line.endswith("\n") else line + "\n"))
            self.logs[key] = lines
            self.log_version += 1
            self.changed.notify_all()

    # --------------------------------------------------------------------------------------- per-kind semantics
    def _check_schema(
        self, kind: ResourceKind, obj: JsonObj, field_validation: str | None, warnings: list[str] | None
    ) -> None:
        """Prune and validate a custom object against its CRD's schema, as the apiserver does (``fake_schema``)."""
        if not kind.custom:
            return
        if kind.key not in self.schemas:
            self.schemas[kind.key] = self.schema_loader(kind) if self.schema_loader is not None else None
        schema = self.schemas[kind.key]
        if schema is None:
            return
        try:
            found = fake_schema.check(schema, obj, field_validation)
        except fake_schema.SchemaProblem as problem:
            if problem.unknown:
                fields = ", ".join(f'unknown field "{u}"' for u in problem.unknown)
                raise bad_request(
                    f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: strict decoding '
                    f"error: {fields}"
                ) from None
            raise invalid(kind, _meta(obj).get("name", ""), [Cause(*c) for c in problem.causes]) from None
        if warnings is not None:
            warnings.extend(found)

    def _admit(self, kind: ResourceKind, obj: JsonObj) -> None:
        """The admission a stock apiserver applies to a create, with its answers (seen on kube-apiserver v1.36).

        ResourceQuota: an object that would take a namespace's count past a quota's ``hard`` limit (``pods``,
        ``configmaps``, ``secrets``, ``services``, ``persistentvolumeclaims``, ``count/<resource>[.<group>]``) is
        refused with 403 ``exceeded quota``; pods in a terminal phase do not count.  ServiceAccount: a pod naming a
        ServiceAccount that does not exist in its namespace is refused with 403.
        """
        if not kind.namespaced or kind.key == RESOURCEQUOTAS.key:
            return
        meta = obj["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        self._admit_quota(kind, namespace, name)
        if kind.key != PODS.key:
            return
        account = obj["spec"]["serviceAccountName"]
        if self.get_or_none(SERVICEACCOUNTS, namespace, account) is None:
            raise ApiError(
                403,
                f'pods "{name}" is forbidden: error looking up service account {namespace}/{account}: '
                f'serviceaccount "{account}" not found',
                reason="Forbidden",
                details={"name": name, "kind": "pods"},
            )

    def _admit_quota(self, kind: ResourceKind, namespace: str, name: str) -> None:
        names = {f"count/{kind.plural}.{kind.group}" if kind.group else f"count/{kind.plural}"}
        if not kind.group and kind.plural in _LEGACY_QUOTA_NAMES:
            names.add(kind.plural)
        for quota in self._objects[RESOURCEQUOTAS.key].values():
            if _meta(quota).get("namespace") != namespace:
                continue
            hard = (quota.get("spec") or {}).get("hard") or {}
            for resource in sorted(names & set(hard)):
                try:
                    limit = int(str(hard[resource]))
                except ValueError:
                    continue  # a quantity like "1k": not modelled
                used = sum(
                    1
                    for obj in self._objects[kind.key].values()
                    if _meta(obj).get("namespace") == namespace
                    and not (kind.key == PODS.key and (obj.get("status") or {}).get("phase") in TERMINAL_POD_PHASES)
                )
                if used + 1 > limit:
                    raise ApiError(
                        403,
                        f'{kind.plural} "{name}" is forbidden: exceeded quota: {_meta(quota)["name"]}, requested: '
                        f"{resource}=1, used: {resource}={used}, limited: {resource}={hard[resource]}",
                        reason="Forbidden",
                        details={"name": name, "kind": kind.plural},
                    )

    def _prepare_create(self, kind: ResourceKind, obj: JsonObj) -> list[Cause]:
        if kind.key == PODS.key:
            spec = obj.get("spec")
            if not isinstance(spec, dict):
                return [_required("spec")]
            causes = _validate_pod_spec(spec, "spec")
            _default_pod_spec(spec)
            obj["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}
            return causes
        if kind.key == JOBS.key:
            return self._prepare_job(obj)
        if kind.key == SECRETS.key:
            string_data = obj.pop("stringData", None) or {}
            data = obj.setdefault("data", {}) or {}
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
            obj.setdefault("type", "Opaque")
            return []
        if kind.key == SERVICES.key:
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            if spec.get("clusterIP") != "None":
                self._cluster_ip += 1
                spec["clusterIP"] = f"10.96.{self._cluster_ip // 250}.{self._cluster_ip % 250}"
            spec["clusterIPs"] = [spec["clusterIP"]]
            spec.setdefault("sessionAffinity", "None")
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            obj["status"] = {"loadBalancer": {}}
            return []
        if kind.key == NAMESPACES.key:
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
            return []
        if kind.key == NODES.key:
            _default_node_status(obj)
            return []
        if kind.plural == "persistentvolumeclaims" and not kind.group:
            obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
            obj["status"] = {"phase": "Pending"}
            return []
        if kind.plural == "endpointslices" and kind.group == "discovery.k8s.io":
            return _validate_endpoint_slice(obj)
        if kind.plural == "events" and not kind.group:
            if not isinstance(obj.get("involvedObject"), dict):
                return [_required("involvedObject")]
            return []
        if "status" in kind.subresources:
            obj.pop("status", None)  # CRDs with a status subresource ignore status on create
        return []

    def _prepare_job(self, obj: JsonObj) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict) or not isinstance(spec.get("template"), dict):
            return [_required("spec.template")]
        uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
        template = spec["template"]
        pod_spec = template.get("spec")
        if not isinstance(pod_spec, dict):
            return [_required("spec.template.spec")]
        causes = _validate_pod_spec(pod_spec, "spec.template.spec")
        restart = pod_spec.get("restartPolicy")
        if restart not in ("Never", "OnFailure"):
            causes.append(
                Cause(
                    "spec.template.spec.restartPolicy",
                    "FieldValueNotSupported" if restart else "FieldValueRequired",
                    (f'Unsupported value: "{restart}": supported values: "OnFailure", "Never"')
                    if restart
                    else 'Required value: valid values: "OnFailure", "Never"',
                )
            )
        _default_pod_spec(pod_spec)
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        for key, value in (
            ("batch.kubernetes.io/controller-uid", uid),
            ("batch.kubernetes.io/job-name", name),
            ("controller-uid", uid),
            ("job-name", name),
        ):
            labels.setdefault(key, value)
        for value in labels.values():
            problem = validate_label_value(str(value))
            if problem:
                causes.append(_invalid_value("spec.template.labels", value, problem))
        if not spec.get("manualSelector"):
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
        spec.setdefault("parallelism", 1)
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        obj["status"] = {}
        return causes

    def _validate_update(self, kind: ResourceKind, old: JsonObj, new: JsonObj, subresource: str | None) -> list[Cause]:
        if kind.key == PODS.key:
            if subresource == "status":
                return []  # any phase transition, even out of Succeeded: a real apiserver accepts it (issue 14)
            if _mutable_pod_spec(old.get("spec")) != _mutable_pod_spec(new.get("spec")):
                return [
                    Cause(
                        "spec",
                        "FieldValueForbidden",
                        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
                        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
                        "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set "
                        "to 1 if it was previously negative)",
                    )
                ]
        if kind.key == JOBS.key and subresource is None:
            old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
            for field in ("template", "selector", "completionMode"):
                if old_spec.get(field) != new_spec.get(field):
                    return [_invalid_value(f"spec.{field}", new_spec.get(field), "field is immutable")]
        return []


def _status_write(kind: ResourceKind, old: JsonObj, new: JsonObj) -> JsonObj:
    """What a write to ``/status`` keeps of ``new``.

    Custom resources: only ``status`` (the CRD status subresource ignores everything else).  Built-in kinds (pods,
    Jobs): their status strategies reset only the spec, ``deletionTimestamp`` and ``ownerReferences``; other metadata
    changes, such as labels, are kept -- as kube-apiserver v1.36 was seen to do (issue 14).
    """
    status = new.get("status")
    if kind.custom:
        kept = copy.deepcopy(old)
    else:
        kept = {k: copy.deepcopy(v) for k, v in old.items() if k not in ("metadata", "status")}
        meta = copy.deepcopy(new.get("metadata") or {})
        for reset in ("deletionTimestamp", "ownerReferences"):
            meta.pop(reset, None)
            if reset in old["metadata"]:
                meta[reset] = copy.deepcopy(old["metadata"][reset])
        kept["metadata"] = meta
    if status is None:
        kept.pop("status", None)
    else:
        kept["status"] = status
    return kept


def _spec_part(obj: Mapping[str, Any]) -> JsonObj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _validate_metadata(meta: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [_invalid_value("metadata.labels", labels, "must be a map of strings")]
    for key, value in labels.items():
        problem = validate_label_key(str(key))
        if problem:
            causes.append(_invalid_value("metadata.labels", key, problem))
        if not isinstance(value, str):
            causes.append(_invalid_value(f"metadata.labels[{key}]", value, "must be a string"))
            continue
        problem = validate_label_value(value)
        if problem:
            causes.append(_invalid_value("metadata.labels", value, problem))
    annotations = meta.get("annotations") or {}
    if isinstance(annotations, dict):
        for key, value in annotations.items():
            if not isinstance(value, str):
                causes.append(_invalid_value(f"metadata.annotations[{key}]", value, "must be a string"))
    return causes


def _validate_pod_spec(spec: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [_required(f"{path}.containers")]
    seen: set[str] = set()
    all_containers = [(f"{path}.containers", c) for c in containers]
    all_containers += [(f"{path}.initContainers", c) for c in spec.get("initContainers") or []]
    for index, (field, container) in enumerate(all_containers):
        where = f"{field}[{index if field.endswith('.containers') else index - len(containers)}]"
        name = container.get("name") if isinstance(container, dict) else None
        if not name:
            causes.append(_required(f"{where}.name"))
        elif not is_dns1123_label(str(name)):
            causes.append(
                _invalid_value(
                    f"{where}.name",
                    name,
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
                )
            )
        elif name in seen:
            causes.append(Cause(f"{where}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
        else:
            seen.add(str(name))
        if isinstance(container, dict) and not container.get("image"):
            causes.append(_required(f"{where}.image"))
    restart = spec.get("restartPolicy")
    if restart is not None and restart not in ("Always", "OnFailure", "Never"):
        causes.append(
            Cause(
                f"{path}.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: "{restart}": supported values: "Always", "OnFailure", "Never"',
            )
        )
    return causes


def _default_pull_policy(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return "IfNotPresent"
    if ":" not in tail or tail.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_pod_spec(spec: JsonObj) -> None:
    """The defaults the apiserver and the admission plugins a stock cluster runs add to a pod spec."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for taint in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == taint for t in tolerations if isinstance(t, dict)):
            tolerations.append({"key": taint, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    for container in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        if not isinstance(container, dict):
            continue
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", _default_pull_policy(str(container.get("image") or "")))
        container.setdefault("resources", {})


def _qos_class(spec: Mapping[str, Any]) -> str:
    containers = [c for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []) if c]
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        if requests or limits:
            any_set = True
        for resource in ("cpu", "memory"):
            limit = limits.get(resource)
            if limit is None or requests.get(resource, limit) != limit:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _mutable_pod_spec(spec: Any) -> Any:
    """A pod spec with the fields the apiserver lets an update change blanked out."""
    if not isinstance(spec, dict):
        return spec
    out = copy.deepcopy(spec)
    for field in ("containers", "initContainers"):
        for container in out.get(field) or []:
            if isinstance(container, dict):
                container.pop("image", None)
    for field in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates"):
        out.pop(field, None)
    return out


def iter_conditions(obj: Mapping[str, Any]) -> Iterable[JsonObj]:
    status = obj.get("status") or {}
    return [c for c in status.get("conditions") or [] if isinstance(c, dict)]

"""Resource kinds known to the fake Kubernetes API server, and the name/label validation a real apiserver applies.

Why a table instead of free-form paths: the official client derives every URL from the group, version and plural of a
resource, and a real apiserver answers differently per kind (which fields a ``fieldSelector`` may use, whether DELETE
returns the object or a ``Status``, whether there is a ``/status`` subresource, the default garbage-collection policy,
whether strategic merge patch is accepted).  Keeping those facts in one frozen record per kind lets the server stay
generic while still answering the way the real one does for the kinds Odin uses, and makes adding a kind a one-liner
(``FakeApiServer.register_kind(custom_kind(...))``).

Validation is deliberately limited to what catches real executor bugs cheaply: DNS-1123 object names, label keys and
values (e.g. a 64-character ``job-name`` label), and a few pod/job spec rules (see ``fake_store``); custom objects
are checked against their CRD's schema (``fake_schema``).  Admission is limited to ServiceAccounts and object-count
quotas, and there is no defaulting beyond the handful of fields listed in ``fake_store``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
_LABEL_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(rf"^{_LABEL_FMT}$")
_DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_LABEL_FMT}(\.{_LABEL_FMT})*$")
_QUALIFIED_NAME_FMT = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_RE = re.compile(rf"^{_QUALIFIED_NAME_FMT}$")
_LABEL_VALUE_RE = re.compile(rf"^({_QUALIFIED_NAME_FMT})?$")

DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation "
    "is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
QUALIFIED_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)

# Field labels every kind supports in a fieldSelector.
BASE_FIELD_LABELS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class ResourceKind:
    """One REST resource: where it lives, and the per-kind behaviour a real apiserver has.

    ``group`` is ``""`` for the core (``/api/v1``) group.  ``custom`` marks a CustomResourceDefinition-backed kind: the
    apiserver rejects strategic merge patch for those (415), exactly as the fake does.  ``default_propagation`` is the
    garbage-collection policy used when a DELETE names none (``Orphan`` for ``batch/v1`` Jobs, for backwards
    compatibility -- deleting a Job without ``propagationPolicy`` leaves its pods behind on a real cluster too).
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: frozenset[str] = frozenset()
    field_labels: frozenset[str] = frozenset()
    short_names: tuple[str, ...] = ()
    custom: bool = False
    return_deleted_object: bool = False
    default_propagation: str = "Background"
    has_generation: bool = True
    name_is_label: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def qualified_resource(self) -> str:
        """``pods`` or ``jobs.batch``: how error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def all_field_labels(self) -> frozenset[str]:
        return BASE_FIELD_LABELS | self.field_labels

    def verbs(self) -> list[str]:
        return ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def custom_kind(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    status: bool = True,
    short_names: tuple[str, ...] = (),
) -> ResourceKind:
    """A CRD-backed kind, as ``CustomObjectsApi`` reaches it (``/apis/{group}/{version}/...``)."""
    return ResourceKind(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        subresources=frozenset({"status"}) if status else frozenset(),
        short_names=short_names,
        custom=True,
    )


_POD_FIELDS = frozenset(
    {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    }
)
_EVENT_FIELDS = frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)

PODS = ResourceKind(
    "",
    "v1",
    "pods",
    "Pod",
    subresources=frozenset({"status", "log", "binding", "eviction"}),
    field_labels=_POD_FIELDS,
    short_names=("po",),
    return_deleted_object=True,
)
EVENTS = ResourceKind(
    "", "v1", "events", "Event", field_labels=_EVENT_FIELDS, short_names=("ev",), has_generation=False
)
SECRETS = ResourceKind("", "v1", "secrets", "Secret", field_labels=frozenset({"type"}), has_generation=False)
CONFIGMAPS = ResourceKind("", "v1", "configmaps", "ConfigMap", short_names=("cm",), has_generation=False)
PVCS = ResourceKind(
    "",
    "v1",
    "persistentvolumeclaims",
    "PersistentVolumeClaim",
    subresources=frozenset({"status"}),
    short_names=("pvc",),
    return_deleted_object=True,
)
SERVICES = ResourceKind(
    "",
    "v1",
    "services",
    "Service",
    subresources=frozenset({"status"}),
    short_names=("svc",),
    return_deleted_object=True,
    name_is_label=True,
)
NAMESPACES = ResourceKind(
    "",
    "v1",
    "namespaces",
    "Namespace",
    namespaced=False,
    subresources=frozenset({"status"}),
    field_labels=frozenset({"status.phase"}),
    short_names=("ns",),
    return_deleted_object=True,
    has_generation=False,
    name_is_label=True,
)
# Nodes are cluster-scoped, carry no `generation`, and have a /status subresource (the kubelet's heartbeat); the only
# extra field selector is `spec.unschedulable`. DELETE answers a Status, as for most kinds.
NODES = ResourceKind(
    "",
    "v1",
    "nodes",
    "Node",
    namespaced=False,
    subresources=frozenset({"status"}),
    field_labels=frozenset({"spec.unschedulable"}),
    short_names=("no",),
    has_generation=False,
)
SERVICEACCOUNTS = ResourceKind(
    "", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",), has_generation=False, return_deleted_object=True
)
RESOURCEQUOTAS = ResourceKind(
    "",
    "v1",
    "resourcequotas",
    "ResourceQuota",
    subresources=frozenset({"status"}),
    short_names=("quota",),
    has_generation=False,
    return_deleted_object=True,
)
JOBS = ResourceKind(
    "batch",
    "v1",
    "jobs",
    "Job",
    subresources=frozenset({"status"}),
    field_labels=frozenset({"status.successful"}),
    default_propagation="Orphan",
)
LEASES = ResourceKind("coordination.k8s.io", "v1", "leases", "Lease", has_generation=False)
# The EndpointSlice controller's objects (what Midgard's discovery lists). The real apiserver keeps `generation` on
# them (bumped when endpoints or ports change) and answers DELETE with a Status, as here; no subresources, and only
# metadata.name / metadata.namespace as field selectors.
ENDPOINTSLICES = ResourceKind("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")

PYTORCHJOBS = custom_kind("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob")
TFJOBS = custom_kind("kubeflow.org", "v1", "tfjobs", "TFJob")
MPIJOBS = custom_kind("kubeflow.org", "v1", "mpijobs", "MPIJob")
ELASTICJOBS = custom_kind("elastic.pytorch.org", "v1alpha1", "elasticjobs", "ElasticJob")
TRAINJOBS = custom_kind("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")
# The Trainer runtimes carry no status stanza in their CRDs, so no /status subresource either.
TRAININGRUNTIMES = custom_kind("trainer.kubeflow.org", "v1alpha1", "trainingruntimes", "TrainingRuntime", status=False)
CLUSTERTRAININGRUNTIMES = custom_kind(
    "trainer.kubeflow.org",
    "v1alpha1",
    "clustertrainingruntimes",
    "ClusterTrainingRuntime",
    namespaced=False,
    status=False,
)

BUILTIN_KINDS: tuple[ResourceKind, ...] = (
    PODS,
    EVENTS,
    SECRETS,
    CONFIGMAPS,
    PVCS,
    SERVICES,
    NAMESPACES,
    NODES,
    SERVICEACCOUNTS,
    RESOURCEQUOTAS,
    JOBS,
    LEASES,
    ENDPOINTSLICES,
    PYTORCHJOBS,
    TFJOBS,
    MPIJOBS,
    ELASTICJOBS,
    TRAINJOBS,
    TRAININGRUNTIMES,
    CLUSTERTRAININGRUNTIMES,
)


def validate_object_name(name: str, kind: ResourceKind) -> str | None:
    """The apiserver's message for an invalid ``metadata.name``, or ``None`` when the name is valid."""
    if kind.name_is_label:
        if len(name) > DNS1123_LABEL_MAX:
            return f"must be no more than {DNS1123_LABEL_MAX} characters"
        return None if _DNS1123_LABEL_RE.match(name) else DNS1123_LABEL_MSG
    if len(name) > DNS1123_SUBDOMAIN_MAX:
        return f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
    return None if _DNS1123_SUBDOMAIN_RE.match(name) else DNS1123_SUBDOMAIN_MSG


def is_dns1123_label(value: str) -> bool:
    return len(value) <= DNS1123_LABEL_MAX and bool(_DNS1123_LABEL_RE.match(value))


def validate_label_key(key: str) -> str | None:
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or len(prefix) > DNS1123_SUBDOMAIN_MAX or not _DNS1123_SUBDOMAIN_RE.match(prefix)):
        return f"prefix part {DNS1123_SUBDOMAIN_MSG}"
    if not name:
        return "name part must be non-empty"
    if len(name) > DNS1123_LABEL_MAX:
        return f"name part must be no more than {DNS1123_LABEL_MAX} characters"
    if not _QUALIFIED_NAME_RE.match(name):
        return QUALIFIED_NAME_MSG
    return None


def validate_label_value(value: str) -> str | None:
    if len(value) > DNS1123_LABEL_MAX:
        return f"must be no more than {DNS1123_LABEL_MAX} characters"
    return None if _LABEL_VALUE_RE.match(value) else LABEL_VALUE_MSG

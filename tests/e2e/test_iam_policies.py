"""IAM Policy Management v1 (`/v1/policies`) through the unmodified
`ibm_platform_services.IamPolicyManagementV1`, as the SDK builds and parses it (spec §2.3), and
the refusals a client must see as clear 4xx in IBM's platform error shape."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests
from ibm_cloud_sdk_core import ApiException
from ibm_cloud_sdk_core.authenticators import IAMAuthenticator
from ibm_platform_services import IamPolicyManagementV1
from ibm_platform_services.iam_policy_management_v1 import (
    Policy,
    PolicyResource,
    PolicyRole,
    PolicySubject,
    ResourceAttribute,
    SubjectAttribute,
)

from conftest import ROLE_CRNS, IamAdmin, assert_platform_error

COS = "cloud-object-storage"
NO_SUCH_GUID = "00000000-0000-4000-8000-000000000000"


def policy_service(server, apikey: str) -> IamPolicyManagementV1:
    svc = IamPolicyManagementV1(authenticator=IAMAuthenticator(apikey, url=server.control_endpoint))
    svc.set_service_url(server.control_endpoint)
    return svc


@pytest.fixture(scope="module")
def admin_svc(server) -> IamPolicyManagementV1:
    return policy_service(server, server.bootstrap["admin_api_key"])


@pytest.fixture(scope="module")
def subject_user(iam: IamAdmin) -> dict:
    """A user the policies of this module are about."""
    return iam.create_user()


def access_models(iam: IamAdmin, iam_id: str, role: str = "Reader", *, bucket: str | None = None):
    subjects = [PolicySubject(attributes=[SubjectAttribute(name="iam_id", value=iam_id)])]
    roles = [PolicyRole(role_id=ROLE_CRNS[role])]
    attrs = [
        ResourceAttribute(name="accountId", value=iam.account_id),
        ResourceAttribute(name="serviceName", value=COS),
        ResourceAttribute(name="serviceInstance", value=iam.cos_instance_id),
    ]
    if bucket:
        attrs += [ResourceAttribute(name="resourceType", value="bucket"),
                  ResourceAttribute(name="resource", value=bucket)]
    return subjects, roles, [PolicyResource(attributes=attrs)]


def authorization_models(iam: IamAdmin, target: str = "kms"):
    subjects = [PolicySubject(attributes=[
        SubjectAttribute(name="accountId", value=iam.account_id),
        SubjectAttribute(name="serviceName", value=COS),
        SubjectAttribute(name="serviceInstance", value=iam.cos_instance_id),
    ])]
    roles = [PolicyRole(role_id=ROLE_CRNS["Reader"])]
    resources = [PolicyResource(attributes=[
        ResourceAttribute(name="accountId", value=iam.account_id),
        ResourceAttribute(name="serviceName", value=target),
    ])]
    return subjects, roles, resources


def attrs_of(entries) -> list[tuple[str, str]]:
    return [(a.name, a.value) for a in entries[0].attributes]


def assert_fresh_policy(server, p: Policy, *, kind: str, description: str | None) -> None:
    b = server.bootstrap
    assert p.id, p
    assert p.type == kind
    assert p.description == description
    assert p.href == f"{server.control_endpoint}/v1/policies/{p.id}", p.href
    assert p.state == "active"
    now = dt.datetime.now(dt.timezone.utc)
    assert isinstance(p.created_at, dt.datetime) and p.created_at.tzinfo is not None, p.created_at
    assert abs((now - p.created_at).total_seconds()) < 60, p.created_at
    assert p.last_modified_at == p.created_at
    assert p.created_by_id == b["admin_iam_id"]
    assert p.last_modified_by_id == b["admin_iam_id"]


# -- create / get / list / delete --------------------------------------------------------------


def test_create_access_policy(server, iam, admin_svc, subject_user):
    subjects, roles, resources = access_models(iam, subject_user["iam_id"], "Reader")
    resp = admin_svc.create_policy(type="access", subjects=subjects, roles=roles, resources=resources,
                                   description="read the instance")
    assert resp.get_status_code() == 201
    p = Policy.from_dict(resp.get_result())
    assert_fresh_policy(server, p, kind="access", description="read the instance")
    assert attrs_of(p.subjects) == [("iam_id", subject_user["iam_id"])]
    assert [r.role_id for r in p.roles] == [ROLE_CRNS["Reader"]]
    assert [r.display_name for r in p.roles] == ["Reader"]
    assert all(r.description for r in p.roles), p.roles
    assert attrs_of(p.resources) == [("accountId", iam.account_id), ("serviceName", COS),
                                     ("serviceInstance", iam.cos_instance_id)]

    got = admin_svc.get_policy(policy_id=p.id)
    assert got.get_status_code() == 200
    assert Policy.from_dict(got.get_result()) == p


@pytest.mark.parametrize("role, display", [
    ("ObjectReader", "Object Reader"), ("ContentReader", "Content Reader"), ("ObjectWriter", "Object Writer"),
    ("Writer", "Writer"), ("Manager", "Manager"), ("Viewer", "Viewer"), ("Administrator", "Administrator"),
])
def test_create_access_policy_with_each_role(server, iam, admin_svc, subject_user, role, display):
    subjects, roles, resources = access_models(iam, subject_user["iam_id"], role)
    resp = admin_svc.create_policy(type="access", subjects=subjects, roles=roles, resources=resources)
    assert resp.get_status_code() == 201
    p = Policy.from_dict(resp.get_result())
    assert [r.role_id for r in p.roles] == [ROLE_CRNS[role]]
    # IBM's display names of the COS roles have a space ("Object Reader"); accept both spellings.
    assert p.roles[0].display_name in (display, role), p.roles[0].display_name
    admin_svc.delete_policy(policy_id=p.id)


def test_create_bucket_scoped_policy(server, iam, admin_svc, subject_user):
    subjects, roles, resources = access_models(iam, subject_user["iam_id"], "Writer", bucket="some-bucket")
    p = Policy.from_dict(admin_svc.create_policy(type="access", subjects=subjects, roles=roles,
                                                 resources=resources).get_result())
    assert ("resourceType", "bucket") in attrs_of(p.resources)
    assert ("resource", "some-bucket") in attrs_of(p.resources)
    admin_svc.delete_policy(policy_id=p.id)


@pytest.mark.parametrize("target", ["kms", "hs-crypto"])
def test_create_authorization_policy(server, iam, admin_svc, target):
    subjects, roles, resources = authorization_models(iam, target)
    resp = admin_svc.create_policy(type="authorization", subjects=subjects, roles=roles, resources=resources,
                                   description=f"COS may use {target} keys")
    assert resp.get_status_code() == 201
    p = Policy.from_dict(resp.get_result())
    assert_fresh_policy(server, p, kind="authorization", description=f"COS may use {target} keys")
    assert attrs_of(p.subjects) == [("accountId", iam.account_id), ("serviceName", COS),
                                    ("serviceInstance", iam.cos_instance_id)]
    assert attrs_of(p.resources) == [("accountId", iam.account_id), ("serviceName", target)]
    assert [(r.role_id, r.display_name) for r in p.roles] == [(ROLE_CRNS["Reader"], "Reader")]
    got = Policy.from_dict(admin_svc.get_policy(policy_id=p.id).get_result())
    assert got == p
    admin_svc.delete_policy(policy_id=p.id)


def test_list_policies_with_filters(server, iam, admin_svc):
    user = iam.create_user()
    other = iam.create_user()
    s, r, res = access_models(iam, user["iam_id"], "Writer")
    mine = admin_svc.create_policy(type="access", subjects=s, roles=r, resources=res).get_result()["id"]
    s, r, res = access_models(iam, other["iam_id"], "Reader")
    theirs = admin_svc.create_policy(type="access", subjects=s, roles=r, resources=res).get_result()["id"]
    s, r, res = authorization_models(iam)
    authz = admin_svc.create_policy(type="authorization", subjects=s, roles=r, resources=res).get_result()["id"]

    everything = admin_svc.list_policies(account_id=iam.account_id)
    assert everything.get_status_code() == 200
    all_policies = [Policy.from_dict(p) for p in everything.get_result()["policies"]]
    ids = {p.id for p in all_policies}
    assert {mine, theirs, authz} <= ids

    access = [Policy.from_dict(p) for p in
              admin_svc.list_policies(account_id=iam.account_id, type="access").get_result()["policies"]]
    assert {mine, theirs} <= {p.id for p in access} and authz not in {p.id for p in access}
    assert {p.type for p in access} == {"access"}

    authorization = [Policy.from_dict(p) for p in admin_svc.list_policies(
        account_id=iam.account_id, type="authorization").get_result()["policies"]]
    assert authz in {p.id for p in authorization}
    assert {p.type for p in authorization} == {"authorization"}

    for_user = [Policy.from_dict(p) for p in admin_svc.list_policies(
        account_id=iam.account_id, type="access", iam_id=user["iam_id"]).get_result()["policies"]]
    assert [p.id for p in for_user] == [mine]
    assert attrs_of(for_user[0].subjects) == [("iam_id", user["iam_id"])]
    assert [r.display_name for r in for_user[0].roles] == ["Writer"]

    for pid in (mine, theirs, authz):
        assert admin_svc.delete_policy(policy_id=pid).get_status_code() == 204


def test_listed_policies_have_absolute_hrefs(server, iam, admin_svc):
    """Every policy's href is the URL of the policy, the bootstrap ones included."""
    listed = admin_svc.list_policies(account_id=iam.account_id).get_result()["policies"]
    assert listed
    bad = [(p["id"], p.get("href")) for p in listed
           if p.get("href") != f"{server.control_endpoint}/v1/policies/{p['id']}"]
    assert not bad, f"policies whose href is not their URL: {bad}"


def test_delete_policy(server, iam, admin_svc, subject_user):
    s, r, res = access_models(iam, subject_user["iam_id"], "ContentReader")
    pid = admin_svc.create_policy(type="access", subjects=s, roles=r, resources=res).get_result()["id"]
    resp = admin_svc.delete_policy(policy_id=pid)
    assert resp.get_status_code() == 204
    assert resp.get_result() is None
    with pytest.raises(ApiException) as e:
        admin_svc.get_policy(policy_id=pid)
    assert e.value.status_code == 404
    with pytest.raises(ApiException) as e:
        admin_svc.delete_policy(policy_id=pid)
    assert e.value.status_code == 404
    listed = admin_svc.list_policies(account_id=iam.account_id).get_result()["policies"]
    assert pid not in [p["id"] for p in listed]


def test_get_unknown_policy_is_404(admin_svc, iam):
    with pytest.raises(ApiException) as e:
        admin_svc.get_policy(policy_id="no-such-policy")
    assert e.value.status_code == 404
    assert_platform_error(iam.call("GET", "/v1/policies/no-such-policy"), 404)


# -- refusals ----------------------------------------------------------------------------------


def _access_body(iam: IamAdmin, iam_id: str, **over) -> dict:
    body = {
        "type": "access",
        "subjects": [{"attributes": [{"name": "iam_id", "value": iam_id}]}],
        "roles": [{"role_id": ROLE_CRNS["Reader"]}],
        "resources": [iam.cos_resource()],
    }
    body.update(over)
    return body


def _resource(iam: IamAdmin, service: str, instance: str | None = None, account: str | None = None) -> list:
    attrs = [{"name": "accountId", "value": account or iam.account_id}, {"name": "serviceName", "value": service}]
    if instance:
        attrs.append({"name": "serviceInstance", "value": instance})
    return [{"attributes": attrs}]


def _authz_body(iam: IamAdmin, **over) -> dict:
    body = {
        "type": "authorization",
        "subjects": [{"attributes": [{"name": "accountId", "value": iam.account_id},
                                     {"name": "serviceName", "value": COS},
                                     {"name": "serviceInstance", "value": iam.cos_instance_id}]}],
        "roles": [{"role_id": ROLE_CRNS["Reader"]}],
        "resources": _resource(iam, "kms"),
    }
    body.update(over)
    return body


BAD_BODIES = {
    "missing-subjects": lambda iam, u: {k: v for k, v in _access_body(iam, u).items() if k != "subjects"},
    "empty-subjects": lambda iam, u: _access_body(iam, u, subjects=[]),
    "missing-roles": lambda iam, u: {k: v for k, v in _access_body(iam, u).items() if k != "roles"},
    "empty-roles": lambda iam, u: _access_body(iam, u, roles=[]),
    "missing-resources": lambda iam, u: {k: v for k, v in _access_body(iam, u).items() if k != "resources"},
    "missing-type": lambda iam, u: {k: v for k, v in _access_body(iam, u).items() if k != "type"},
    "unknown-type": lambda iam, u: _access_body(iam, u, type="superpower"),
    "unknown-service": lambda iam, u: _access_body(iam, u, resources=_resource(iam, "no-such-service")),
    "unknown-cos-instance": lambda iam, u: _access_body(iam, u, resources=_resource(iam, COS, NO_SUCH_GUID)),
    "unknown-role": lambda iam, u: _access_body(
        iam, u, roles=[{"role_id": "crn:v1:bluemix:public:iam::::serviceRole:Overlord"}]),
    "role-not-a-crn": lambda iam, u: _access_body(iam, u, roles=[{"role_id": "Reader"}]),
    "cos-role-on-kms": lambda iam, u: _access_body(
        iam, u, roles=[{"role_id": ROLE_CRNS["ObjectReader"]}], resources=_resource(iam, "kms")),
    "kms-role-on-cos": lambda iam, u: _access_body(
        iam, u, roles=[{"role_id": "crn:v1:bluemix:public:kms::::serviceRole:KeyPurge"}]),
    "identity-of-no-account": lambda iam, u: _access_body(
        iam, "IBMid-NOSUCHUSER0",
        subjects=[{"attributes": [{"name": "iam_id", "value": "IBMid-NOSUCHUSER0"}]}]),
    "foreign-account-resource": lambda iam, u: _access_body(iam, u, resources=_resource(iam, COS, account="0" * 32)),
    "authz-unknown-source-service": lambda iam, u: _authz_body(iam, subjects=[{"attributes": [
        {"name": "accountId", "value": iam.account_id}, {"name": "serviceName", "value": "no-such-service"}]}]),
    "authz-unknown-target-service": lambda iam, u: _authz_body(iam, resources=_resource(iam, "no-such-kms")),
    "authz-unknown-kms-instance": lambda iam, u: _authz_body(iam, resources=_resource(iam, "kms", NO_SUCH_GUID)),
    "authz-unknown-cos-instance": lambda iam, u: _authz_body(iam, subjects=[{"attributes": [
        {"name": "accountId", "value": iam.account_id}, {"name": "serviceName", "value": COS},
        {"name": "serviceInstance", "value": NO_SUCH_GUID}]}]),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_invalid_policy_refused(iam, subject_user, case):
    before = {p["id"] for p in iam.call("GET", "/v1/policies", params={"account_id": iam.account_id},
                                        expect=200).json()["policies"]}
    body = BAD_BODIES[case](iam, subject_user["iam_id"])
    r = iam.call("POST", "/v1/policies", json=body)
    assert_platform_error(r, 400)
    after = {p["id"] for p in iam.call("GET", "/v1/policies", params={"account_id": iam.account_id},
                                       expect=200).json()["policies"]}
    assert after == before, "a refused policy was stored anyway"


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[]", b"null", b'{"type": "access"'],
                         ids=["broken", "empty", "array", "null", "truncated"])
def test_malformed_json_refused(iam, raw):
    r = iam.call("POST", "/v1/policies", data=raw, headers={"Content-Type": "application/json"})
    assert_platform_error(r, 400)


def test_sdk_sees_invalid_role_as_400(iam, admin_svc, subject_user):
    subjects, _, resources = access_models(iam, subject_user["iam_id"])
    with pytest.raises(ApiException) as e:
        admin_svc.create_policy(type="access", subjects=subjects, resources=resources,
                                roles=[PolicyRole(role_id="crn:v1:bluemix:public:iam::::serviceRole:Nope")])
    assert e.value.status_code == 400
    assert e.value.message and e.value.message != "Unknown error"


@pytest.mark.parametrize("role", ["Reader", "Manager", "Viewer"])
def test_non_admin_cannot_manage_policies(server, iam, admin_svc, subject_user, role):
    caller = iam.identity("user")
    iam.grant(caller["iam_id"], role)
    svc = policy_service(server, caller["apikey"])
    subjects, roles, resources = access_models(iam, subject_user["iam_id"], "Writer")
    with pytest.raises(ApiException) as e:
        svc.create_policy(type="access", subjects=subjects, roles=roles, resources=resources)
    assert e.value.status_code == 403, e.value
    # Not even for itself.
    subjects, roles, resources = access_models(iam, caller["iam_id"], "Manager")
    with pytest.raises(ApiException) as e:
        svc.create_policy(type="access", subjects=subjects, roles=roles, resources=resources)
    assert e.value.status_code == 403, e.value

    s, r, res = access_models(iam, subject_user["iam_id"], "ObjectReader")
    victim = admin_svc.create_policy(type="access", subjects=s, roles=r, resources=res).get_result()["id"]
    with pytest.raises(ApiException) as e:
        svc.delete_policy(policy_id=victim)
    assert e.value.status_code == 403, e.value
    assert admin_svc.get_policy(policy_id=victim).get_status_code() == 200
    admin_svc.delete_policy(policy_id=victim)

    # Raw: the IBM error shape.
    r = requests.post(f"{server.control_endpoint}/v1/policies", timeout=10,
                      headers={"Authorization": f"Bearer {svc.authenticator.token_manager.get_token()}"},
                      json=_access_body(iam, subject_user["iam_id"]))
    assert_platform_error(r, 403)


def test_non_admin_list_shows_only_what_it_may_read(server, iam, subject_user):
    """IBM: list_policies returns the policies the caller has read access to, and an empty array
    if there are none (the SDK's documentation of list_policies) - not a 403."""
    caller = iam.identity("user")
    iam.grant(caller["iam_id"], "Reader")
    svc = policy_service(server, caller["apikey"])
    resp = svc.list_policies(account_id=iam.account_id)
    assert resp.get_status_code() == 200
    visible = [Policy.from_dict(p) for p in resp.get_result()["policies"]]
    admin_iam_id = server.bootstrap["admin_iam_id"]
    assert not [p.id for p in visible if ("iam_id", admin_iam_id) in attrs_of(p.subjects)], \
        "a Reader sees the account owner's policies"


def test_no_token_is_401(server, iam, admin_svc, subject_user):
    s, r, res = access_models(iam, subject_user["iam_id"], "ObjectReader")
    pid = admin_svc.create_policy(type="access", subjects=s, roles=r, resources=res).get_result()["id"]
    base = f"{server.control_endpoint}/v1/policies"
    assert_platform_error(requests.post(base, json=_access_body(iam, subject_user["iam_id"]), timeout=10), 401)
    assert_platform_error(requests.get(base, params={"account_id": iam.account_id}, timeout=10), 401)
    assert_platform_error(requests.get(f"{base}/{pid}", timeout=10), 401)
    assert_platform_error(requests.delete(f"{base}/{pid}", timeout=10), 401)
    assert admin_svc.get_policy(policy_id=pid).get_status_code() == 200
    admin_svc.delete_policy(policy_id=pid)


def test_sdk_with_unknown_api_key_fails_with_400(server, iam):
    svc = policy_service(server, "Qq" * 22)
    with pytest.raises(ApiException) as e:
        svc.list_policies(account_id=iam.account_id)
    assert e.value.status_code == 400
    assert e.value.message == "Provided API key could not be found."


def test_policy_grants_take_effect_and_deletion_revokes(server, iam, admin_svc):
    """A policy created through the SDK is what authorizes: a Reader may list buckets over HMAC,
    and may not once the policy is deleted."""
    from botocore.exceptions import ClientError

    from conftest import make_client

    caller = iam.identity("serviceid")
    hmac = iam.create_hmac(caller["iam_id"])
    c = make_client(server.endpoint, hmac["access_key_id"], hmac["secret_access_key"])
    with pytest.raises(ClientError) as e:
        c.list_buckets()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    s, r, res = access_models(iam, caller["iam_id"], "Reader")
    pid = admin_svc.create_policy(type="access", subjects=s, roles=r, resources=res).get_result()["id"]
    assert c.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    admin_svc.delete_policy(policy_id=pid)
    with pytest.raises(ClientError) as e:
        c.list_buckets()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert e.value.response["Error"]["Code"] == "AccessDenied"


def test_policy_body_round_trips_through_sdk_json(server, iam, admin_svc, subject_user):
    """What the SDK serialises is what the server stores (no attribute dropped or renamed)."""
    subjects, roles, resources = access_models(iam, subject_user["iam_id"], "Manager", bucket="round-trip")
    sent = Policy(type="access", subjects=subjects, roles=roles, resources=resources, description="rt")
    created = admin_svc.create_policy(type="access", subjects=subjects, roles=roles, resources=resources,
                                      description="rt").get_result()
    got = Policy.from_dict(created)
    assert json.dumps([s.to_dict() for s in got.subjects], sort_keys=True) == \
        json.dumps([s.to_dict() for s in sent.subjects], sort_keys=True)
    assert json.dumps([r.to_dict() for r in got.resources], sort_keys=True) == \
        json.dumps([r.to_dict() for r in sent.resources], sort_keys=True)
    admin_svc.delete_policy(policy_id=got.id)

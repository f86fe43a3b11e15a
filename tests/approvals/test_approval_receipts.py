"""Every executed approved call has a signed receipt: what was approved (the arguments as
executed), by whom, under which rule, and the hash of the result the model received. Changing
any field breaks the signature; only its approvers, requester and superusers may fetch it."""

import copy
import hashlib
import json
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app import links, receipts
from approvals_app import records as approval_records
from tests.turn_states import assert_error

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

EDITED = {"to": "y@example.com", "subject": "Hello", "body": "Edited by a person."}


@pytest.fixture(autouse=True)
def receipt_key_in(settings, tmp_path):
    """A key generated for this test, in its own data directory."""
    settings.APPROVAL_RECEIPT_KEY = ""
    settings.DATA_DIR = tmp_path
    return tmp_path / receipts.KEY_FILE


def client_for(person) -> APIClient:
    client = APIClient()
    client.force_authenticate(person)
    return client


def receipt_response(person, approval):
    return client_for(person).get(f"/api/approvals/{approval.pk}/receipt/")


@pytest.fixture
def executed(email_waiting_for_approval, outbox, llm, approver, run_turn_in_thread):
    """Approves the e-mail (with ``arguments`` when given), runs the call; returns the request,
    and what the model received as the call's result."""

    def run(**body):
        turn, approval = email_waiting_for_approval()
        response = client_for(approver).post(
            f"/api/approvals/{approval.pk}/approve/", body, format="json"
        )
        assert response.status_code == 200
        assert_error(receipt_response(approver, approval), 404)
        assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED
        approval.refresh_from_db()
        received = [
            message["content"]
            for message in llm.requests[-1].body["messages"]
            if message["role"] == "tool"
        ]
        return approval, received[-1]

    return run


def test_it_signs_the_receipt_of_the_executed_call(executed, approver, user, receipt_key_in):
    approval, received = executed()

    response = receipt_response(user, approval)

    assert response.status_code == 200
    document = response.json()
    receipt = document["receipt"]
    assert receipt == {
        "request": approval.pk,
        "tool": "send_email",
        "arguments_sha256": approval_records.arguments_hash(approval.arguments),
        "approvers": [{"user": "carol", "at": receipt["approvers"][0]["at"]}],
        "rule": "the tool's default",
        "executed_at": approval.executed_at.isoformat(),
        "result_sha256": hashlib.sha256(received.encode()).hexdigest(),
    }
    assert receipts.receipt_verify(document)
    assert stat.S_IMODE(receipt_key_in.stat().st_mode) == 0o600


def test_it_hashes_the_edited_arguments_as_executed(executed, user, outbox):
    approval, received = executed(arguments=EDITED)

    receipt = receipt_response(user, approval).json()["receipt"]

    canonical = json.dumps(EDITED, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert receipt["arguments_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert receipt["arguments_sha256"] != approval_records.arguments_hash(approval.arguments)
    assert [m.to for m in outbox] == [[EDITED["to"]]]
    assert receipt["result_sha256"] == hashlib.sha256(received.encode()).hexdigest()


CHANGES = {
    "request": lambda r: r["request"] + 1,
    "tool": lambda r: "delete_everything",
    "arguments_sha256": lambda r: "0" * 64,
    "approvers": lambda r: [{"user": "mallory", "at": r["approvers"][0]["at"]}],
    "rule": lambda r: "Another rule",
    "executed_at": lambda r: "2020-01-01T00:00:00+00:00",
    "result_sha256": lambda r: "f" * 64,
}


def test_it_fails_verification_when_any_field_changes(executed, user):
    approval, _ = executed()
    document = receipt_response(user, approval).json()
    assert set(CHANGES) == set(document["receipt"])

    for name, change in CHANGES.items():
        changed = copy.deepcopy(document)
        changed["receipt"][name] = change(document["receipt"])
        assert not receipts.receipt_verify(changed), name
    resigned = copy.deepcopy(document)
    resigned["signature"] = resigned["signature"][::-1]
    assert not receipts.receipt_verify(resigned)


def test_it_gives_the_receipt_to_its_approver_requester_and_superusers_only(
    executed, approver, user, other_user, make_approver, django_user_model
):
    approval, _ = executed()
    admin = django_user_model.objects.create_superuser("root", password="root-pw-1")

    for person in (approver, user, admin):
        assert receipt_response(person, approval).status_code == 200, person
    for person in (other_user, make_approver("not-deciding")):
        assert_error(receipt_response(person, approval), 404, "not_found")
    assert client_for(user).get("/api/approvals/999999/receipt/").status_code == 404


def test_it_answers_404_before_the_approved_call_has_run(
    email_waiting_for_approval, user, approver
):
    _, approval = email_waiting_for_approval()

    assert_error(receipt_response(user, approval), 404)


def test_verify_receipt_exits_0_intact_1_changed_2_not_json(executed, user, tmp_path):
    approval, _ = executed()
    document = receipt_response(user, approval).json()
    intact, changed, garbage = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    intact.write_text(json.dumps(document))
    document["receipt"]["tool"] = "other_tool"
    changed.write_text(json.dumps(document))
    garbage.write_text("this is not {json")

    call_command("verify_receipt", str(intact))
    with pytest.raises(CommandError) as was_changed:
        call_command("verify_receipt", str(changed))
    with pytest.raises(CommandError) as not_json:
        call_command("verify_receipt", str(garbage))

    assert was_changed.value.returncode == 1
    assert not_json.value.returncode == 2 and "not a JSON file" in str(not_json.value)


def test_the_published_key_verifies_the_receipt(executed, user, tmp_path):
    approval, _ = executed()
    (tmp_path / "r.json").write_text(json.dumps(receipt_response(user, approval).json()))
    pem = APIClient().get("/api/approvals/receipt-key/")
    assert pem.status_code == 200 and pem.content.startswith(b"-----BEGIN PUBLIC KEY-----")
    (tmp_path / "key.pem").write_bytes(pem.content)

    call_command("verify_receipt", str(tmp_path / "r.json"), key=str(tmp_path / "key.pem"))


def test_it_shows_a_download_link_on_the_requests_admin_page(executed, django_user_model):
    approval, _ = executed()
    admin = django_user_model.objects.create_superuser("root", password="root-pw-1")
    client = APIClient()
    client.force_login(admin)

    page = client.get(f"/admin/approvals_app/approvalrequest/{approval.pk}/change/")

    assert f'href="/api/approvals/{approval.pk}/receipt/"' in page.content.decode()
    assert approval.turn.events.filter(kind=EventKind.TOOL_RESULT).exists()


def test_it_signs_with_the_configured_key(settings):
    key = Ed25519PrivateKey.generate()
    settings.APPROVAL_RECEIPT_KEY = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()

    assert receipts.signing_key().public_key().public_bytes_raw() == (
        key.public_key().public_bytes_raw()
    )
    assert not list(Path(settings.DATA_DIR).glob("*.pem"))


def test_processes_starting_together_make_one_key(tmp_path):
    path = tmp_path / "keys" / receipts.KEY_FILE
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(lambda _: receipts._load_or_create(path), range(8)))

    assert len({key.public_key().public_bytes_raw() for key in keys}) == 1
    assert [p.name for p in path.parent.iterdir()] == [receipts.KEY_FILE]


def test_the_decision_link_page_offers_the_receipt_once_the_call_ran(executed, approver):
    approval, _ = executed()
    link = urlsplit(links.link_for(approval, approver.pk))
    page = Client()
    page.force_login(approver)

    shown = page.get(f"{link.path}?{link.query}")

    receipt_url = f"/api/approvals/{approval.pk}/receipt/"
    assert shown.status_code == 200
    assert f'href="{receipt_url}"' in shown.content.decode()
    downloaded = page.get(receipt_url)
    assert downloaded.status_code == 200
    assert receipts.receipt_verify(downloaded.json())


def test_the_decision_link_page_offers_no_receipt_before_the_call_ran(
    email_waiting_for_approval, approver
):
    _, approval = email_waiting_for_approval()
    link = urlsplit(links.link_for(approval, approver.pk))
    page = Client()
    page.force_login(approver)

    shown = page.get(f"{link.path}?{link.query}")

    assert shown.status_code == 200
    assert "/receipt/" not in shown.content.decode()

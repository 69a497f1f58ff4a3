"""A customer naming another customer's things by id gets 404, exactly as for ids that do not
exist (no existence leak), and the audit log keeps the difference."""

from __future__ import annotations

import uuid

import httpx

from tests.security.conftest import SecApi
from tests.security.helpers import new_customer, start_transfer


def test_another_customers_resources_are_404_like_missing_ones(sec: SecApi, http: httpx.Client) -> None:
    owner = new_customer(sec, http, funded_minor=50_000)
    payee = new_customer(sec, http)
    snoop = new_customer(sec, http)
    created = start_transfer(http, owner, payee, 1_234)
    assert created.status_code == 201, created.text
    transfer_id = created.json()["id"]
    account_id = owner.account["id"]
    # The inbox row the notifier would write for the OTP message (the relay is not running here).
    notification_id = str(uuid.uuid4())
    sec.sql(
        "INSERT INTO notifications (id, customer_id, channel, subject, body, transfer_id) "
        "VALUES (%s, %s, 'in_app', 'Approve your transfer', 'secret body', %s)",
        notification_id,
        owner.id,
        transfer_id,
    )
    reads = {
        "transfer": f"/v1/transfers/{transfer_id}",
        "notification": f"/v1/notifications/{notification_id}",
        "statement": f"/v1/accounts/{account_id}/entries",
        "balance": f"/v1/accounts/{account_id}/balance",
        "account": f"/v1/accounts/{account_id}",
    }
    for what, path in reads.items():
        assert http.get(path, headers=owner.auth).status_code == 200, f"the owner cannot read their {what}"
        theirs = http.get(path, headers=snoop.auth)
        for real in (transfer_id, account_id, notification_id):
            path_of_nothing = path.replace(real, str(uuid.uuid4()))
            if path_of_nothing != path:
                break
        missing = http.get(path_of_nothing, headers=snoop.auth)
        assert theirs.status_code == 404, f"{what}: {theirs.status_code}"
        assert missing.status_code == 404
        # Same answer, byte for byte, as for an id that does not exist.
        assert theirs.json() == missing.json(), what
    for path in (f"/v1/transfers/{transfer_id}/otp", f"/v1/transfers/{transfer_id}/cancel"):
        answer = http.post(path, json={"code": "000000"}, headers=snoop.auth)
        assert answer.status_code == 404, answer.text
    # Nothing of theirs shows up in the snoop's lists either.
    assert http.get("/v1/transfers", headers=snoop.auth).json()["items"] == []
    assert http.get("/v1/notifications", headers=snoop.auth).json()["items"] == []
    audited = {
        r[0]
        for r in sec.sql(
            "SELECT target_type FROM audit_log WHERE action = 'access_denied' AND actor_id = %s "
            "AND detail ->> 'reason' = 'not_owner'",
            snoop.id,
        )
    }
    assert {"transfer", "notification", "account"} <= audited

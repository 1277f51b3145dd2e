"""Run one campaign through the Python client generated from openapi/openapi.json.

The steps are: create a campaign, import a contact file, validate, launch and
fetch the report. The script reads OUTBOUND_URL, OUTBOUND_TOKEN and
OUTBOUND_PROJECT_ID from the environment (ci/sdk_test.sh sets them) and exits
with status 1 at the first step that fails.
"""

import datetime
import os
import sys
import zoneinfo
from http import HTTPStatus
from uuid import UUID

from outbound_client import AuthenticatedClient
from outbound_client.api.campaigns import create_campaign
from outbound_client.api.lifecycle import launch_campaign, validate_campaign
from outbound_client.api.reports import campaign_report
from outbound_client.models import CallType, CampaignState, CheckStatus, CreateCampaign, ImportResult
from outbound_client.types import Response

# Numbers from ACMA's list of fictitious numbers.
CONTACT_NUMBERS = [
    "0491 570 006",
    "0491 570 156",
    "0491 570 157",
    "0491 570 158",
    "0491 570 159",
    "0491 570 110",
    "0491 570 313",
    "0491 570 737",
    "(02) 5550 1234",
    "(03) 5550 2345",
    "(07) 5550 3456",
    "(08) 5550 4567",
]


def fail(message: str) -> None:
    print(f"SDK workflow failed: {message}", file=sys.stderr)
    sys.exit(1)


def expect_status(response: Response, expected: HTTPStatus, step: str) -> None:
    """Exit with status 1, printing the response body, unless the status is `expected`."""
    if response.status_code != expected:
        body = response.content.decode("utf-8", errors="replace")
        fail(f"{step} returned {int(response.status_code)}, expected {int(expected)}: {body}")


def contacts_csv() -> str:
    """Build a contact file whose rows were all washed `not_registered` today.

    Today is the Australia/Sydney date because the server counts the days a
    wash result stays current in that zone.
    """
    wash_day = datetime.datetime.now(zoneinfo.ZoneInfo("Australia/Sydney")).date().isoformat()
    lines = ["to_number,first_name,registry_status,registry_checked_at"]
    for index, number in enumerate(CONTACT_NUMBERS):
        lines.append(f'"{number}",Recipient{index},not_registered,{wash_day}')
    return "\n".join(lines) + "\n"


def main() -> None:
    client = AuthenticatedClient(
        base_url=os.environ["OUTBOUND_URL"],
        token=os.environ["OUTBOUND_TOKEN"],
        raise_on_unexpected_status=True,
    )

    created = create_campaign.sync_detailed(
        client=client,
        body=CreateCampaign(
            project_id=UUID(os.environ["OUTBOUND_PROJECT_ID"]),
            name="SDK workflow",
            call_type=CallType.TELEMARKETING,
            capacity=2,
            caller_id="1300 975 707",
            organisation="Example Outreach Pty Ltd",
            on_behalf_of="Example Energy Co",
            purpose="an offer on a new electricity plan",
            contact_for_questions="questions@example.com.au",
            personalisation_keys=["first_name"],
        ),
    )
    expect_status(created, HTTPStatus.CREATED, "create_campaign")
    campaign_id = str(created.parsed.id)
    print(f"created campaign {campaign_id} in state {created.parsed.state}")

    # openapi-python-client 0.29.1 generates no function for an operation whose
    # request body is text/csv, so this one request goes through the generated
    # client's httpx client. The response is parsed with the generated model.
    upload = client.get_httpx_client().post(
        f"/v1/campaigns/{campaign_id}/imports",
        content=contacts_csv().encode("utf-8"),
        headers={"Content-Type": "text/csv"},
    )
    if upload.status_code != HTTPStatus.CREATED:
        fail(f"import_contacts returned {upload.status_code}, expected 201: {upload.text}")
    imported = ImportResult.from_dict(upload.json())
    print(f"imported {imported.rows_accepted} of {imported.rows_total} rows, {imported.rows_rejected} rejected")
    if imported.rows_accepted != len(CONTACT_NUMBERS):
        fail(f"import accepted {imported.rows_accepted} rows, expected {len(CONTACT_NUMBERS)}: {upload.text}")

    validated = validate_campaign.sync_detailed(campaign_id, client=client)
    expect_status(validated, HTTPStatus.OK, "validate_campaign")
    report = validated.parsed
    blockers = [check.name for check in report.checks if check.status == CheckStatus.BLOCKER]
    print(f"validation: ready={report.ready}, {report.contacts_callable} of {report.contacts_total} callable")
    if not report.ready:
        fail(f"validation is not ready; blocking checks: {blockers}")

    launched = launch_campaign.sync_detailed(campaign_id, client=client)
    expect_status(launched, HTTPStatus.OK, "launch_campaign")
    print(f"launched: state {launched.parsed.state}")
    if launched.parsed.state != CampaignState.RUNNING:
        fail(f"launch left the campaign in state {launched.parsed.state}, expected running")

    reported = campaign_report.sync_detailed(campaign_id, client=client)
    expect_status(reported, HTTPStatus.OK, "campaign_report")
    print(f"report: state {reported.parsed.state}, contacts_total {reported.parsed.contacts_total}")
    if reported.parsed.contacts_total != imported.rows_accepted:
        fail(f"report counts {reported.parsed.contacts_total} contacts, expected {imported.rows_accepted}")

    print("SDK workflow passed")


if __name__ == "__main__":
    main()

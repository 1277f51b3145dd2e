//! The OpenAPI document, generated from the handlers and types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{api_keys, campaigns, imports, lifecycle, reports, suppressions, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Outbound Campaigns API",
        description = "Outbound AI voice-calling campaigns for Australian recipients: campaigns, contact imports, DNCR wash evidence, launch validation, calling, reports and audit. Errors are RFC 9457 problem documents with a stable `code`.",
        version = "0.1.0"
    ),
    paths(
        api_keys::create_api_key,
        api_keys::list_api_keys,
        api_keys::revoke_api_key,
        campaigns::create_campaign,
        campaigns::list_campaigns,
        campaigns::get_campaign,
        campaigns::update_campaign,
        imports::import_contacts,
        imports::get_import,
        imports::list_import_issues,
        imports::rejected_rows_csv,
        imports::attach_wash,
        lifecycle::validate_campaign,
        lifecycle::exclude_contacts,
        lifecycle::launch_campaign,
        lifecycle::pause_campaign,
        lifecycle::resume_campaign,
        lifecycle::cancel_campaign,
        reports::campaign_report,
        reports::list_contacts,
        reports::campaign_audit,
        reports::export_contacts,
        reports::campaign_timeline,
        suppressions::add_suppression,
        suppressions::list_suppressions,
        suppressions::remove_suppression,
        webhooks::receive_event,
    ),
    components(schemas(crate::voice::CallRequest, crate::voice::CallAccepted, crate::voice::Disclosure)),
    modifiers(&BearerAuth),
    tags(
        (name = "api-keys", description = "Partner API keys"),
        (name = "campaigns", description = "Create and read campaigns"),
        (name = "imports", description = "Contact CSV imports and DNCR wash results"),
        (name = "lifecycle", description = "Validation, exclusions and state transitions"),
        (name = "reports", description = "Reports, masked contacts and the audit trail"),
        (name = "suppressions", description = "Numbers a client must never call again"),
        (name = "voice", description = "Signed webhook for voice platform call events. The platform receives `CallRequest` at `POST {platform}/v1/calls`, signed the same way, and answers `CallAccepted`."),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON with a trailing newline, as committed in `openapi/openapi.json`.
pub fn document_json() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

//! The suppression API: add by number, list masked, remove with a reason.

use crate::support::TestApp;

#[tokio::test]
async fn suppression_added_listed_masked_and_removed() {
    let app = TestApp::spawn().await;
    let base = format!("/v1/clients/{}/suppressions", app.tenant.client);
    let (status, added) = app
        .post(
            &base,
            &app.admin(),
            serde_json::json!({"number": "+61 491 570 159", "reason": "asked by email"}),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["masked_number"], "+61 ******159");
    assert_eq!(added["source"], "operator");

    let (status, again) = app
        .post(
            &base,
            &app.admin(),
            serde_json::json!({"number": "0491570159"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        again["id"], added["id"],
        "the same number in another form is the same entry"
    );

    let (status, list) = app.get(&base, &app.token("partner_user")).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert!(
        !list.to_string().contains("491570159"),
        "the list shows masked numbers only"
    );

    let id = added["id"].as_str().expect("id");
    let (status, problem) = app
        .post(
            &format!("{base}/{id}/remove"),
            &app.admin(),
            serde_json::json!({"reason": " "}),
        )
        .await;
    assert_eq!(status, 422, "removal needs a reason");
    assert_eq!(problem["code"], "invalid_reason");
    let (status, removed) = app
        .post(
            &format!("{base}/{id}/remove"),
            &app.admin(),
            serde_json::json!({"reason": "consent renewed"}),
        )
        .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["removed_reason"], "consent renewed");
    let (_, list) = app.get(&base, &app.admin()).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));

    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE action LIKE 'suppression.%' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(
        actions,
        vec!["suppression.add", "suppression.add", "suppression.remove"]
    );
    let audit_text: String =
        sqlx::query_scalar("SELECT string_agg(details::text, ' ') FROM audit_log")
            .fetch_one(&app.pool)
            .await
            .expect("audit");
    assert!(
        !audit_text.contains("570159") && !audit_text.contains("570 159"),
        "audit entries hold no number"
    );
    app.finish().await;
}

#[tokio::test]
async fn suppressed_number_blocks_contacts_of_every_campaign() {
    let app = TestApp::spawn().await;
    let first = app.create_campaign(serde_json::json!({})).await;
    let (status, _) = app
        .import_csv(&first, "to_number\n0491 570 158\n0491 570 157\n")
        .await;
    assert_eq!(status, 201);
    let (status, _) = app
        .post(
            &format!("/v1/clients/{}/suppressions", app.tenant.client),
            &app.admin(),
            serde_json::json!({"number": "0491570158"}),
        )
        .await;
    assert_eq!(status, 201);
    let second = app.create_campaign(serde_json::json!({})).await;
    let (status, _) = app
        .import_csv(&second, "to_number\n+61 491 570 158\n")
        .await;
    assert_eq!(status, 201);
    for campaign in [&first, &second] {
        let (status, contacts) = app
            .get(&format!("/v1/campaigns/{campaign}/contacts"), &app.admin())
            .await;
        assert_eq!(status, 200);
        let suppressed = contacts["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|c| c["masked_number"] == "+61 ******158")
            .cloned()
            .expect("contact");
        assert_eq!(suppressed["suppressed"], true);
        assert_eq!(suppressed["blocked_reason"], "suppressed");
        assert!(
            suppressed["next_eligible_at"].is_null(),
            "a suppressed number is never eligible"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn suppression_rejects_invalid_number_without_echo() {
    let app = TestApp::spawn().await;
    let (status, problem) = app
        .post(
            &format!("/v1/clients/{}/suppressions", app.tenant.client),
            &app.admin(),
            serde_json::json!({"number": "0491 57A 632"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem["code"], "invalid_to_number");
    assert!(!problem.to_string().contains("57A"));
    let (status, _) = app
        .post(
            &format!("/v1/clients/{}/suppressions", uuid::Uuid::new_v4()),
            &app.admin(),
            serde_json::json!({"number": "0491 570 006"}),
        )
        .await;
    assert_eq!(status, 404, "an unassigned client is not found");
    app.finish().await;
}

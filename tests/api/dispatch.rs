//! Dispatcher capacity: a campaign's and a partner's concurrent calls stay
//! within their caps at every sampled moment.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use outbound_domain::eligibility::{CampaignRules, Rules};
use outbound_domain::hours::CallType;
use outbound_domain::zone::ANYWHERE;
use outbound_http::clock::Clock;
use outbound_http::simulator::SimulatorConfig;

use crate::support::{Options, TestApp, VOICE_SECRET};

/// Mobiles from ACMA's fictitious range, washed today.
fn contacts_csv(count: usize, start: chrono::DateTime<Utc>) -> String {
    let today = start
        .with_timezone(&chrono_tz::Australia::Sydney)
        .date_naive();
    let mut csv = String::from("to_number,registry_status,registry_checked_at\n");
    for i in 0..count {
        csv.push_str(&format!("0491 571 {:03},not_registered,{today}\n", 100 + i));
    }
    csv
}

async fn running_app() -> (TestApp, actix_web::dev::ServerHandle) {
    let config = SimulatorConfig {
        secret: Arc::new(VOICE_SECRET.to_vec()),
        call_duration_ms: (300, 600),
        failure_rate: 0.0,
    };
    let (address, simulator) = outbound_http::server::start_simulator(
        config,
        TcpListener::bind("127.0.0.1:0").expect("bind"),
    )
    .expect("simulator");
    let start = Rules::default()
        .next_open(
            &ANYWHERE,
            &CampaignRules::defaults(CallType::Telemarketing),
            Utc::now(),
        )
        .expect("a calling minute exists");
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        clock: Clock::accelerated(start, 1.0),
        voice_platform_url: Some(format!("http://{address}")),
        ..Options::default()
    })
    .await;
    (app, simulator)
}

async fn launch(app: &TestApp, capacity: i32, contacts: usize) -> String {
    let start = Rules::default()
        .next_open(
            &ANYWHERE,
            &CampaignRules::defaults(CallType::Telemarketing),
            Utc::now(),
        )
        .expect("a calling minute exists");
    let campaign = app
        .create_campaign(serde_json::json!({"capacity": capacity, "default_max_attempts": 1}))
        .await;
    let (status, import) = app
        .import_csv(&campaign, &contacts_csv(contacts, start))
        .await;
    assert_eq!(status, 201, "{import}");
    let (status, body) = app
        .post(
            &format!("/v1/campaigns/{campaign}/launch"),
            &app.admin(),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "launch: {body}");
    campaign
}

async fn open_attempts(app: &TestApp, campaign: Option<&str>) -> i64 {
    let query = "SELECT count(*) FROM attempts WHERE state IN ('handing_over', 'handed_over', 'connected') AND ($1::uuid IS NULL OR campaign_id = $1::uuid)";
    let id = campaign.map(|c| uuid::Uuid::parse_str(c).expect("uuid"));
    sqlx::query_scalar(query)
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

async fn wait_until_completed(app: &TestApp, campaigns: &[&str], mut sample: impl FnMut(i64)) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        sample(open_attempts(app, None).await);
        let states: Vec<String> =
            sqlx::query_scalar("SELECT state FROM campaigns WHERE id = ANY($1)")
                .bind(
                    campaigns
                        .iter()
                        .map(|c| uuid::Uuid::parse_str(c).expect("uuid"))
                        .collect::<Vec<_>>(),
                )
                .fetch_all(&app.pool)
                .await
                .expect("states");
        if states.iter().all(|s| s == "completed") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "campaigns did not complete: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn campaign_capacity_holds_throughout() {
    let (app, simulator) = running_app().await;
    let campaign = launch(&app, 2, 8).await;
    let mut highest = 0;
    wait_until_completed(&app, &[&campaign], |open| highest = highest.max(open)).await;
    assert!(highest <= 2, "at most 2 calls in progress, saw {highest}");
    assert!(highest >= 1, "calls were placed");
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(attempts, 8, "one attempt per contact with max_attempts 1");
    simulator.stop(true).await;
    app.finish().await;
}

#[tokio::test]
async fn partner_capacity_spans_campaigns() {
    let (app, simulator) = running_app().await;
    outbound_persistence::tenancy::set_partner_capacity(&app.pool, app.tenant.partner, Some(1))
        .await
        .expect("cap");
    let first = launch(&app, 3, 4).await;
    let second = launch(&app, 3, 4).await;
    let mut highest = 0;
    wait_until_completed(&app, &[&first, &second], |open| highest = highest.max(open)).await;
    assert_eq!(
        highest, 1,
        "the partner cap of 1 holds across both campaigns"
    );
    simulator.stop(true).await;
    app.finish().await;
}

//! `outbound bench import`: a contact file imported end to end over HTTP into
//! a fresh database, timed against a plain PostgreSQL `COPY` of the same rows.
//!
//! The file is written to a temporary file first, so generating it costs the
//! measurement nothing. The API server runs in this process. Its peak
//! resident memory is read from `/proc/self/status` (`VmHWM`) after the peak
//! is reset through `/proc/self/clear_refs`. The figure then covers the
//! import and this process's small HTTP client, not the generator.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use futures_util::StreamExt;
use outbound_http::auth::{mint_hs256, Authenticator, Claims};
use outbound_http::clock::Clock;
use outbound_http::state::{AppState, ImportLimits, VoiceSettings};
use outbound_persistence::crypto::Keyring;
use outbound_persistence::{db, tenancy};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use uuid::Uuid;

#[derive(Args)]
pub struct ImportBenchArgs {
    /// Data rows in the generated contact file.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Rows per thousand that are invalid or duplicates.
    #[arg(long, default_value_t = 30)]
    pub bad_per_thousand: u32,
    /// Seed of the generated file, so runs are comparable.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// PostgreSQL server to use; the benchmark creates its own database on it
    /// and drops it afterwards.
    #[arg(long, env = "DATABASE_URL", default_value = db::DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// Keep the benchmark database instead of dropping it.
    #[arg(long)]
    pub keep_database: bool,
}

/// The figures of one run; printed as the last output line.
#[derive(Debug, Serialize)]
struct ImportBenchResult {
    rows: u64,
    seconds: f64,
    rows_per_sec: f64,
    copy_floor_rows_per_sec: f64,
    server_peak_rss_mb: f64,
    file_bytes: u64,
    rows_accepted: i64,
    rows_rejected: i64,
    copy_floor_rows: u64,
    copy_floor_seconds: f64,
    /// The same `COPY` into a table with the indexes of contacts.
    copy_with_indexes_rows_per_sec: f64,
}

/// Runs the benchmark on the current multi-threaded runtime.
pub fn run_blocking(args: &ImportBenchArgs) -> anyhow::Result<()> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(run(args)))
}

const JWT_SECRET_LENGTH: usize = 48;
const ISSUER: &str = "outbound-bench";
const AUDIENCE: &str = "outbound-api";

const FIRST_NAMES: [&str; 8] = [
    "Noah",
    "Zoë",
    "Seán",
    "\"O'Brien, Jr\"",
    "Mia",
    "Nguyễn",
    "Aroha",
    "Li",
];
const ZONES: [&str; 6] = ["", "NSW", "VIC", "Australia/Perth", "QLD", "SA"];

/// Returns a distinct 8-digit suffix for row `row`. Multiplying by a number
/// coprime with 10^8 permutes 0..10^8, so rows below 10^8 never share a number.
fn mobile_suffix(row: u64) -> u64 {
    (row * 7_919_993 + 12_345_679) % 100_000_000
}

/// Writes the mobile `04` + `suffix` in the style numbered `style`.
fn write_number(out: &mut String, suffix: u64, style: u32) {
    use std::fmt::Write as _;
    let digits = format!("{suffix:08}");
    let (a, b, c) = (&digits[..2], &digits[2..5], &digits[5..]);
    let _ = match style {
        0 => write!(out, "04{a} {b} {c}"),
        1 => write!(out, "+61 4{a} {b} {c}"),
        2 => write!(out, "614{a}{b}{c}"),
        3 => write!(out, "04{a}-{b}-{c}"),
        4 => write!(out, "+61 04{a} {b} {c}"),
        5 => write!(out, "0061 4{a} {b} {c}"),
        // A spreadsheet dropped the trunk zero: imported with a warning.
        6 => write!(out, "4{a}{b}{c}"),
        // A spreadsheet added `.0`: imported with a warning.
        _ => write!(out, "04{a}{b}{c}.0"),
    };
}

/// Writes the contact file and returns its size in bytes.
///
/// The numbers are synthetic: distinct numbers in the 04xx mobile space,
/// because ACMA's fictitious ranges hold far fewer than a million. They exist
/// only in this temporary file and the benchmark's own database, which is
/// dropped at the end unless `--keep-database` is given.
fn write_contact_file(path: &Path, args: &ImportBenchArgs) -> anyhow::Result<u64> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut line = String::with_capacity(256);
    out.write_all(b"to_number,contact_ref,first_name,priority,registry_status,registry_checked_at,recipient_timezone\n")?;
    for row in 0..args.rows {
        line.clear();
        let bad = rng.gen_range(0..1000) < args.bad_per_thousand;
        let suffix = mobile_suffix(row);
        let mut priority = (1 + row % 10).to_string();
        let mut zone = ZONES[(row % ZONES.len() as u64) as usize];
        match (bad, rng.gen_range(0..6)) {
            (false, _) => write_number(&mut line, suffix, rng.gen_range(0..8)),
            // A letter O typed for a zero.
            (true, 0) => line.push_str(&format!("04{:08}", suffix).replacen('0', "O", 2)),
            // A digit missing.
            (true, 1) => line.push_str(&format!("04{:07}", suffix / 10)),
            // Scientific notation from a spreadsheet.
            (true, 2) => line.push_str(&format!("{:.5}E+08", 4.0 + suffix as f64 / 1e8)),
            (true, 3) => {
                write_number(&mut line, suffix, 0);
                priority = "11".into();
            }
            // The number of the previous row in another style.
            (true, 4) => write_number(&mut line, mobile_suffix(row.saturating_sub(1)), 1),
            (true, _) => {
                write_number(&mut line, suffix, 2);
                zone = "AEST";
            }
        }
        let name = FIRST_NAMES[(row % FIRST_NAMES.len() as u64) as usize];
        let (status, checked) = if row % 3 == 0 {
            ("", "")
        } else if row % 3 == 1 {
            ("N", "2026-11-20")
        } else {
            ("not_registered", "2026-11-20T09:30:00+11:00")
        };
        line.push_str(&format!(
            ",CRM-{row:07},{name},{priority},{status},{checked},{zone}\n"
        ));
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn random_bytes(length: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; length];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// Peak resident memory of this process in MiB, from `VmHWM`.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the peak resident memory to the current size (Linux 4.0 and later).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Posts `path` as the body of `POST {target}` over plain HTTP/1.1, streaming
/// it from disk; returns the status and body of the response.
fn post_file(
    address: SocketAddr,
    target: &str,
    token: &str,
    path: &Path,
) -> anyhow::Result<(u16, String)> {
    let length = std::fs::metadata(path)?.len();
    let mut stream = TcpStream::connect(address)?;
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: text/csv\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes())?;

    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        stream.write_all(&buffer[..read])?;
    }
    stream.flush()?;

    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("unexpected HTTP status line {status_line:?}"))?;
    let mut chunked = false;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if header.eq_ignore_ascii_case("transfer-encoding: chunked") {
            chunked = true;
        }
    }
    let mut body = String::new();
    reader.read_to_string(&mut body)?;
    if chunked {
        body = dechunk(&body);
    }
    Ok((status, body))
}

/// Decodes a chunked HTTP/1.1 body.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// A database of its own on the benchmark's server, dropped by [`BenchDatabase::drop_now`].
struct BenchDatabase {
    server: PgConnectOptions,
    name: String,
    url: String,
}

impl BenchDatabase {
    async fn create(base_url: &str) -> anyhow::Result<Self> {
        let server =
            PgConnectOptions::from_str(base_url).context("DATABASE_URL is not a PostgreSQL URL")?;
        let name = format!("outbound_bench_{}", Uuid::new_v4().simple());
        let mut url = url_without_database(base_url);
        url.push('/');
        url.push_str(&name);
        db::ensure_database(&url).await?;
        Ok(Self { server, name, url })
    }

    async fn drop_now(self) -> anyhow::Result<()> {
        let mut admin = self.server.clone().database("postgres").connect().await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await?;
        Ok(())
    }
}

/// Returns `postgres://user@host:port` from a URL that may name a database and options.
fn url_without_database(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

/// Asks PostgreSQL to write its dirty pages now, so neither timed phase pays
/// for the other's checkpoint. Needs a superuser; without one it is skipped.
async fn checkpoint(connection: &mut PgConnection) {
    if let Err(error) = sqlx::query("CHECKPOINT").execute(&mut *connection).await {
        println!("- CHECKPOINT skipped: {error}");
    }
}

const CONTACT_COLUMNS: &str = "id, campaign_id, client_id, import_id, key_id, row_number, phone_ciphertext, phone_index,
    phone_masked, number_type, personalisation_ciphertext, contact_ref, zone_source, zone_key, registry_status,
    registry_checked_at, registry_evidence, registry_source, consent_type, consent_evidence, consent_given_on,
    consent_expires_on, exemption, priority, max_attempts";

/// Writes the imported rows, already normalised and sealed, to `path` as a
/// binary `COPY` payload, in the order they were stored.
async fn export_rows(
    connection: &mut PgConnection,
    import_id: &str,
    path: &Path,
) -> anyhow::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let statement = format!(
        "COPY (SELECT {CONTACT_COLUMNS} FROM contacts WHERE import_id = '{import_id}' ORDER BY ctid)
         TO STDOUT (FORMAT binary)"
    );
    let mut rows = connection.copy_out_raw(&statement).await?;
    while let Some(chunk) = rows.next().await {
        out.write_all(&chunk?)?;
    }
    out.flush()?;
    Ok(())
}

/// Creates `table` as `LIKE contacts` with `like_options` and times a `COPY`
/// of the payload at `path` into it; returns the rows copied and the seconds taken.
async fn time_copy(
    connection: &mut PgConnection,
    table: &str,
    like_options: &str,
    path: &Path,
) -> anyhow::Result<(u64, f64)> {
    sqlx::query(&format!(
        "CREATE TABLE {table} (LIKE contacts {like_options})"
    ))
    .execute(&mut *connection)
    .await?;
    checkpoint(connection).await;

    let started = Instant::now();
    let mut copy = connection
        .copy_in_raw(&format!(
            "COPY {table} ({CONTACT_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        copy.send(&buffer[..read]).await?;
    }
    let rows = copy.finish().await?;
    Ok((rows, started.elapsed().as_secs_f64()))
}

async fn run(args: &ImportBenchArgs) -> anyhow::Result<()> {
    let work = std::env::temp_dir().join(format!("outbound-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir(&work)?;
    let result = run_in(args, &work).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn run_in(args: &ImportBenchArgs, work: &Path) -> anyhow::Result<()> {
    let csv_path: PathBuf = work.join("contacts.csv");
    let started = Instant::now();
    let file_bytes = write_contact_file(&csv_path, args)?;
    println!(
        "- generated {} rows ({:.1} MB, about {} per thousand bad) in {:.1} s",
        args.rows,
        file_bytes as f64 / 1e6,
        args.bad_per_thousand,
        started.elapsed().as_secs_f64()
    );

    let database = BenchDatabase::create(&args.database_url).await?;
    println!("- database {}", database.name);
    let outcome = measure(args, &database, &csv_path, file_bytes, work).await;
    if args.keep_database {
        println!("- kept database {}", database.name);
    } else if let Err(error) = database.drop_now().await {
        println!("- could not drop the benchmark database: {error}");
    }
    let result = outcome?;
    println!(
        "- imported {} rows in {:.2} s: {:.0} rows/s ({} accepted, {} rejected)",
        result.rows,
        result.seconds,
        result.rows_per_sec,
        result.rows_accepted,
        result.rows_rejected
    );
    println!(
        "- COPY floor: {} rows in {:.2} s: {:.0} rows/s; the import took {:.2}x the floor's time per row",
        result.copy_floor_rows,
        result.copy_floor_seconds,
        result.copy_floor_rows_per_sec,
        result.copy_floor_rows_per_sec / result.rows_per_sec
    );
    println!(
        "- COPY into a table with the indexes of contacts: {:.0} rows/s ({:.2}x the floor's time per row)",
        result.copy_with_indexes_rows_per_sec,
        result.copy_floor_rows_per_sec / result.copy_with_indexes_rows_per_sec
    );
    println!("- server peak RSS {:.0} MB", result.server_peak_rss_mb);
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

async fn measure(
    args: &ImportBenchArgs,
    database: &BenchDatabase,
    csv_path: &Path,
    file_bytes: u64,
    work: &Path,
) -> anyhow::Result<ImportBenchResult> {
    let pool = db::connect(&database.url, 10).await?;
    db::migrate(&pool).await?;

    // A server with fresh random keys and limits that admit the whole file.
    let jwt_secret = random_bytes(JWT_SECRET_LENGTH);
    let keyring = Keyring::new(
        &[("bench".into(), random_bytes(32))],
        "bench",
        random_bytes(32),
    )?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let state = AppState {
        event_batcher: outbound_http::event_batch::EventBatcher::start(pool.clone()),
        pool: pool.clone(),
        keyring: Arc::new(keyring),
        authenticator: Arc::new(Authenticator::hs256(&jwt_secret, ISSUER, AUDIENCE)),
        clock: Clock::System,
        voice: VoiceSettings {
            platform_url: None,
            public_url: format!("http://{address}"),
            secret: None,
            result_timeout_seconds: 900,
            handover_timeout: Duration::from_secs(5),
        },
        limits: ImportLimits {
            max_bytes: usize::try_from(file_bytes)?.saturating_add(1),
            max_rows: usize::try_from(args.rows)?.max(1),
            ..ImportLimits::default()
        },
        import_jobs: Arc::default(),
        http: reqwest::Client::new(),
        rate_limits: None,
    };
    let server = outbound_http::server::start(state, listener, false)?;

    let outcome = import_and_floor(
        args,
        &database.url,
        &pool,
        address,
        &jwt_secret,
        csv_path,
        file_bytes,
        work,
    )
    .await;
    server.stop().await;
    pool.close().await;
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn import_and_floor(
    args: &ImportBenchArgs,
    database_url: &str,
    pool: &sqlx::PgPool,
    address: SocketAddr,
    jwt_secret: &[u8],
    csv_path: &Path,
    file_bytes: u64,
    work: &Path,
) -> anyhow::Result<ImportBenchResult> {
    let tenant_partner = tenancy::create_partner(pool, "Bench partner").await?;
    let client = tenancy::create_client(pool, "Bench client").await?;
    tenancy::assign_client(pool, tenant_partner, client).await?;
    let project = tenancy::create_project(pool, client, "Bench project").await?;
    let now = chrono::Utc::now().timestamp();
    let token = mint_hs256(
        jwt_secret,
        &Claims {
            sub: "bench".into(),
            role: "partner_admin".into(),
            partner_id: Some(tenant_partner),
            client_ids: vec![client],
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: now + 3600,
            nbf: now - 60,
            iat: now - 60,
        },
    )?;
    let http = reqwest::Client::new();
    let base = format!("http://{address}");
    let campaign: serde_json::Value = http
        .post(format!("{base}/v1/campaigns"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "project_id": project,
            "name": "Import benchmark",
            "call_type": "telemarketing",
            "personalisation_keys": ["first_name"],
            "capacity": 5,
            "caller_id": "1300 975 707",
            "organisation": "Example Outreach Pty Ltd",
            "on_behalf_of": "Example Energy Co",
            "purpose": "an offer on a new electricity plan",
            "contact_for_questions": "questions@example.com.au",
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let campaign_id = campaign["id"].as_str().context("campaign id")?.to_owned();

    let mut admin = PgConnectOptions::from_str(database_url)?.connect().await?;
    checkpoint(&mut admin).await;
    let reset = reset_peak_rss();
    if !reset {
        println!("- could not reset the peak RSS; it includes the generator");
    }

    let started = Instant::now();
    let target = format!("/v1/campaigns/{campaign_id}/imports");
    let path = csv_path.to_owned();
    let upload_token = token.clone();
    let (status, body) =
        tokio::task::spawn_blocking(move || post_file(address, &target, &upload_token, &path))
            .await??;
    let accepted_after = started.elapsed().as_secs_f64();
    let body: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("upload answered {status}: {body}"))?;
    let import_id = body["import_id"]
        .as_str()
        .with_context(|| format!("upload answered {status}: {body}"))?
        .to_owned();
    println!("- upload answered {status} after {accepted_after:.2} s; polling the import");
    let final_state = loop {
        let state: serde_json::Value = http
            .get(format!(
                "{base}/v1/campaigns/{campaign_id}/imports/{import_id}"
            ))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        if state["state"] != "processing" {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let server_peak_rss_mb = peak_rss_mb().unwrap_or(f64::NAN);
    if final_state["state"] != "completed" {
        bail!("the import did not complete: {final_state}");
    }

    // The floor: the same rows into a table with no index, constraint or
    // trigger. Then the same rows into a table with the indexes of contacts,
    // updated row by row as a later import into the same campaign updates
    // them; a first import builds them by sorting instead.
    let rows_path = work.join("rows.copy");
    export_rows(&mut admin, &import_id, &rows_path).await?;
    let (copy_floor_rows, copy_floor_seconds) = time_copy(
        &mut admin,
        "bench_copy_floor",
        "INCLUDING DEFAULTS",
        &rows_path,
    )
    .await?;
    let (indexed_rows, indexed_seconds) = time_copy(
        &mut admin,
        "bench_copy_indexed",
        "INCLUDING ALL",
        &rows_path,
    )
    .await?;
    admin.close().await?;
    Ok(ImportBenchResult {
        rows: args.rows,
        seconds,
        rows_per_sec: args.rows as f64 / seconds,
        copy_floor_rows_per_sec: copy_floor_rows as f64 / copy_floor_seconds,
        server_peak_rss_mb,
        file_bytes,
        rows_accepted: final_state["rows_accepted"].as_i64().unwrap_or(0),
        rows_rejected: final_state["rows_rejected"].as_i64().unwrap_or(0),
        copy_floor_rows,
        copy_floor_seconds,
        copy_with_indexes_rows_per_sec: indexed_rows as f64 / indexed_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_suffixes_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for row in 0..200_000 {
            assert!(
                seen.insert(mobile_suffix(row)),
                "row {row} repeats a number"
            );
        }
    }

    #[test]
    fn every_style_normalises_to_the_same_number() {
        use outbound_domain::phone::{normalise, NumberPolicy};
        for style in 0..8 {
            let mut text = String::new();
            write_number(&mut text, 12_345_678, style);
            let number = normalise(&text, NumberPolicy::default()).expect("valid");
            assert_eq!(
                number.e164.as_str(),
                "+61412345678",
                "style {style}: {text}"
            );
        }
    }

    #[test]
    fn url_loses_its_database() {
        assert_eq!(
            url_without_database("postgres://postgres@127.0.0.1:5432/outbound?sslmode=disable"),
            "postgres://postgres@127.0.0.1:5432"
        );
    }
}

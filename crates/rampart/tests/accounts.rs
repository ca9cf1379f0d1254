//! `rampart user` and `rampart token` against a real store file: what they
//! write is what the server will check (argon2 hashes, token hashes).

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn rampart(db: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .args(["--database", db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("output")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn users_and_tokens_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}/rampart.db", dir.path().display());

    let out = rampart(
        &db,
        &[
            "user",
            "add",
            "alice",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "s3cret-pass\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let dup = rampart(
        &db,
        &["user", "add", "alice", "--password-stdin"],
        "another-pass\n",
    );
    assert!(!dup.status.success());
    assert!(text(&dup).contains("already exists"), "{}", text(&dup));
    let short = rampart(&db, &["user", "add", "bob", "--password-stdin"], "short\n");
    assert!(!short.status.success());
    assert!(text(&short).contains("too short"), "{}", text(&short));
    let machine = rampart(
        &db,
        &["user", "add", "bot", "--role", "agent", "--password-stdin"],
        "long-enough\n",
    );
    assert_eq!(machine.status.code(), Some(2), "{}", text(&machine));

    let out = rampart(
        &db,
        &[
            "user",
            "passwd",
            "alice",
            "--role",
            "operator",
            "--password-stdin",
        ],
        "new-password\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let list = rampart(&db, &["user", "list", "--json"], "");
    let users: Vec<serde_json::Value> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["name"], "alice");
    assert_eq!(users[0]["role"], "operator");
    assert!(
        users[0].get("password_hash").is_none(),
        "hashes are not printed"
    );

    let created = rampart(&db, &["token", "create", "agent-web-1"], "");
    assert!(created.status.success(), "{}", text(&created));
    let token = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    assert!(token.starts_with("rpt_"), "{token}");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = rampart_store::open(&db).await.expect("store");
        let alice = store.get_user("alice").await.expect("get").expect("alice");
        assert!(rampart_server::auth::verify_password(
            &alice.password_hash,
            "new-password"
        ));
        assert!(!rampart_server::auth::verify_password(
            &alice.password_hash,
            "s3cret-pass"
        ));
        let found = store
            .token_by_hash(&rampart_server::auth::token_hash(&token))
            .await
            .expect("find")
            .expect("the printed token is the stored one");
        assert_eq!(found.name, "agent-web-1");
        assert_eq!(found.role, rampart_store::Role::Agent);
    });

    let revoked = rampart(&db, &["token", "revoke", "agent-web-1"], "");
    assert!(revoked.status.success(), "{}", text(&revoked));
    let again = rampart(&db, &["token", "revoke", "agent-web-1"], "");
    assert!(!again.status.success());
    let list = rampart(&db, &["token", "list"], "");
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        listed.contains("agent-web-1") && listed.contains("revoked"),
        "{listed}"
    );
    assert!(!listed.contains(&token), "secrets are never listed");
}

//! Mail over TLS: aiosmtpd with a certificate of the test's own CA, the
//! page trusting that CA alone (`smtp.ca_file`): over STARTTLS with a login
//! (password from a file, never in the page's log) and over implicit TLS,
//! the mail arrives; a server whose certificate another CA signed gets no
//! mail, not even in clear, which it would take: the failure is logged and
//! counted and the mail stays queued.

use super::{smtp_yaml, start_page, subscribe, wait_for_mails, wait_for_metric};
use crate::harness::certificate::TestCa;
use crate::harness::dir::TempDir;
use crate::harness::smtp::Aiosmtpd;
use crate::reports::{Store, client};

/// The login the STARTTLS server asks for.
const LOGIN: &str = "status-page";
/// Its password (in a file the page reads).
const PASSWORD: &str = "smtp-password-of-the-tests";

/// Subscribes `address` on a page mailing through `smtp` as `security`
/// says; the page, for the test to look at.
async fn subscribe_through(
    dir: &TempDir,
    smtp: &Aiosmtpd,
    security: &[&str],
    address: &str,
) -> crate::harness::binary::Running {
    let page = start_page(
        dir,
        &Store::Sqlite.url(dir),
        &smtp_yaml(smtp.port, security),
    );
    let answer = subscribe(&client(), &page, address, &[], "ua-tls").await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    page
}

/// STARTTLS, the server's certificate checked against `ca_file`, a login.
#[tokio::test]
async fn mail_goes_over_starttls_with_a_login_to_a_server_the_ca_file_trusts() {
    let (Some(ca), Some(smtp)) = (TestCa::make("trusted"), Aiosmtpd::new()) else {
        return;
    };
    let mut smtp = smtp.starttls(&ca, true).requiring_login(LOGIN, PASSWORD);
    smtp.start();
    let dir = TempDir::new("notify-starttls");
    let password = dir.write("smtp-password", &format!("{PASSWORD}\n"));
    let ca_file = format!("ca_file: {}", ca.ca.display());
    let username = format!("username: {LOGIN}");
    let password_file = format!("password_file: {}", password.display());
    let security = ["tls: starttls", &ca_file, &username, &password_file];
    let page = subscribe_through(&dir, &smtp, &security, "tls@example.org").await;
    let mails = wait_for_mails(|| smtp.mails(), "tls@example.org", 1).await;
    assert!(
        mails[0]
            .link(&format!("{}/confirm?token=", super::BASE_URL))
            .is_some()
    );
    assert!(
        !page.log().contains(PASSWORD),
        "the password is never logged"
    );
}

/// Implicit TLS (SMTPS), the server's certificate checked against `ca_file`.
#[tokio::test]
async fn mail_goes_over_implicit_tls_to_a_server_the_ca_file_trusts() {
    let (Some(ca), Some(smtp)) = (TestCa::make("trusted"), Aiosmtpd::new()) else {
        return;
    };
    let mut smtp = smtp.implicit_tls(&ca);
    smtp.start();
    let dir = TempDir::new("notify-smtps");
    let ca_file = format!("ca_file: {}", ca.ca.display());
    let _page = subscribe_through(&dir, &smtp, &["tls: tls", &ca_file], "smtps@example.org").await;
    wait_for_mails(|| smtp.mails(), "smtps@example.org", 1).await;
}

/// A certificate the page does not trust: over STARTTLS (the server would
/// take mail in clear) and over implicit TLS, nothing is sent; each failure
/// is logged and counted, and the mail waits in the outbox.
#[tokio::test]
async fn a_server_whose_certificate_is_not_trusted_gets_no_mail() {
    let (Some(trusted), Some(other)) = (TestCa::make("trusted"), TestCa::make("other")) else {
        return;
    };
    let ca_file = format!("ca_file: {}", trusted.ca.display());
    for (tls, name) in [("tls: starttls", "starttls"), ("tls: tls", "smtps")] {
        let Some(smtp) = Aiosmtpd::new() else {
            return;
        };
        let mut smtp = match name {
            "starttls" => smtp.starttls(&other, false),
            _ => smtp.implicit_tls(&other),
        };
        smtp.start();
        let dir = TempDir::new(&format!("notify-untrusted-{name}"));
        let page = subscribe_through(&dir, &smtp, &[tls, &ca_file], "never@example.org").await;
        let http = client();
        let failed =
            "chatprobe_notifications_failed_total{channel=\"email\",reason=\"unreachable\"}";
        wait_for_metric(&http, &page, failed, 1.0).await;
        wait_for_metric(&http, &page, "chatprobe_notification_queue_depth", 1.0).await;
        assert!(smtp.mails().is_empty(), "{name}: nothing was sent in clear");
        assert!(
            page.log()
                .contains("notify: a email confirm failed (unreachable"),
            "{name}: the failure is logged:\n{}",
            page.log()
        );
    }
}

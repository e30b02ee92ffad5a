//! The small pages a mail's links open: confirmed, unsubscribe (a button
//! that posts, so a link scanner's GET unsubscribes nobody), unsubscribed,
//! manage (the choices, changeable), and the errors of a bad link. Server
//! rendered, no script, every text escaped, served with the page's CSP.

use std::fmt::Write as _;

use super::choices::{Choices, When};
use crate::config::status_page::PublicWording;
use crate::probe::ProbeKind;
use crate::status::html::Escaped;

/// A whole page titled `heading` around `body` (HTML, already escaped).
fn page(heading: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{heading}</title><style>body{{font-family:system-ui,sans-serif;max-width:40rem;\
         margin:2rem auto;padding:0 1rem;line-height:1.5}}button{{font-size:1rem;padding:.4rem 1rem}}\
         fieldset{{margin:1rem 0}}</style></head><body><h1>{heading}</h1>\n{body}\n\
         <p><a href=\"/\">Back to the status page</a></p></body></html>\n",
        heading = Escaped(heading)
    )
}

/// A page saying `text` under `heading`.
pub(crate) fn message(heading: &str, text: &str) -> String {
    page(heading, &format!("<p>{}</p>", Escaped(text)))
}

/// The choices in words, features by `wording`'s names.
fn describe(choices: &Choices, wording: &PublicWording) -> String {
    let features = match choices.features.is_empty() {
        true => "every feature".to_string(),
        false => {
            let names: Vec<&str> = choices
                .features
                .iter()
                .map(|probe| wording.feature_name(probe))
                .collect();
            names.join(", ")
        }
    };
    let when: Vec<&str> = choices
        .events
        .iter()
        .map(|when| match when {
            When::Opened => "when a problem starts",
            When::Resolved => "when it is back",
        })
        .collect();
    format!("{features}, {}", when.join(" and "))
}

/// "Confirmed", with what the address will hear of.
pub(crate) fn confirmed(choices: &Choices, wording: &PublicWording) -> String {
    message(
        "Subscription confirmed",
        &format!(
            "Thank you: you will get a mail about {}. Every mail has a link to unsubscribe.",
            describe(choices, wording)
        ),
    )
}

/// The unsubscribe page: one button that posts `token` back.
pub(crate) fn unsubscribe_form(token: &str) -> String {
    page(
        "Unsubscribe",
        &format!(
            "<form method=\"post\" action=\"/unsubscribe?token={}\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <p>Stop all mail from this status page to your address?</p>\
             <button type=\"submit\">Unsubscribe</button></form>",
            Escaped(token)
        ),
    )
}

/// The links of a subscriber's manage page: its own token and the
/// unsubscribe link's.
pub(crate) struct ManageTokens<'a> {
    /// Posts the form back.
    pub(crate) manage: &'a str,
    /// Opens the unsubscribe page.
    pub(crate) unsubscribe: &'a str,
}

/// The manage page: the current `choices` (features by `wording`'s names),
/// a form to change them, and the way out.
pub(crate) fn manage(
    tokens: &ManageTokens<'_>,
    choices: &Choices,
    wording: &PublicWording,
    saved: bool,
) -> String {
    let mut body = String::new();
    if saved {
        body.push_str("<p role=\"status\"><strong>Saved.</strong></p>");
    }
    let _ = write!(
        body,
        "<p>You hear of {}.</p><form method=\"post\" action=\"/manage?token={}\">\
         <fieldset><legend>Features (none ticked: all)</legend>",
        Escaped(&describe(choices, wording)),
        Escaped(tokens.manage)
    );
    for kind in ProbeKind::ALL {
        let name = kind.as_str();
        let checked = if choices.features.iter().any(|f| f == name) {
            " checked"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<label><input type=\"checkbox\" name=\"features\" value=\"{}\"{checked}> {}</label><br>",
            Escaped(name),
            Escaped(wording.feature_name(name))
        );
    }
    body.push_str("</fieldset><fieldset><legend>When</legend>");
    for when in When::ALL {
        let label = match when {
            When::Opened => "When a problem starts",
            When::Resolved => "When it is back",
        };
        let checked = if choices.events.contains(&when) {
            " checked"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<label><input type=\"checkbox\" name=\"events\" value=\"{}\"{checked}> {label}</label><br>",
            when.as_str()
        );
    }
    let _ = write!(
        body,
        "</fieldset><button type=\"submit\">Save</button></form>\
         <p><a href=\"/unsubscribe?token={}\">Unsubscribe</a></p>",
        Escaped(tokens.unsubscribe)
    );
    page("Your subscription", &body)
}

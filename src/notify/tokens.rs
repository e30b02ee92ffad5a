//! The tokens in a mail's links: `ID.MAC`, the subscriber's id (hex) and an
//! HMAC-SHA256 of the link's purpose, the id and the address under the
//! store's token secret ([`crate::store::secret::named`]). A token proves
//! the link came in a mail to that address: without the secret none can be
//! made, one for another address or purpose does not check, and an id
//! alone is worth nothing.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The name of the token secret in the store.
pub(crate) const SECRET_NAME: &str = "notify-tokens";

/// What a link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `GET /confirm`: confirms the address.
    Confirm,
    /// `/unsubscribe`: removes it.
    Unsubscribe,
    /// `/manage`: shows and changes its choices.
    Manage,
}

impl Purpose {
    /// The word the MAC covers.
    fn word(self) -> &'static [u8] {
        match self {
            Purpose::Confirm => b"confirm",
            Purpose::Unsubscribe => b"unsubscribe",
            Purpose::Manage => b"manage",
        }
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadToken {
    /// Not shaped like a token.
    #[error("this link is not valid: its token is malformed")]
    Malformed,
    /// Shaped like one, but not made by this page for this address and purpose.
    #[error("this link is not valid: it was not sent to this address")]
    Forged,
}

/// Makes and checks tokens under one secret.
#[derive(Clone)]
pub(crate) struct Tokens {
    secret: Vec<u8>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { secret: *** }")
    }
}

impl Tokens {
    /// Tokens under `secret`.
    pub(crate) fn new(secret: Vec<u8>) -> Tokens {
        Tokens { secret }
    }

    /// The MAC of `purpose`, `id` and `email`.
    fn mac(&self, purpose: Purpose, id: i64, email: &str) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            unreachable!("HMAC accepts keys of every length")
        };
        for part in [purpose.word(), &id.to_be_bytes(), email.as_bytes()] {
            mac.update(part);
            mac.update(b"\n");
        }
        mac
    }

    /// The token of `purpose` for subscriber `id` at `email`.
    pub(crate) fn make(&self, purpose: Purpose, id: i64, email: &str) -> String {
        let mac = self.mac(purpose, id, email).finalize().into_bytes();
        format!("{id:016x}.{}", hex::encode(mac))
    }

    /// The subscriber id a token names (still to be [`Tokens::check`]ed
    /// against that subscriber's address).
    pub(crate) fn id_of(token: &str) -> Result<i64, BadToken> {
        let (id, mac) = token.split_once('.').ok_or(BadToken::Malformed)?;
        let well_formed = id.len() == 16
            && mac.len() == 64
            && id.bytes().chain(mac.bytes()).all(|b| b.is_ascii_hexdigit());
        if !well_formed {
            return Err(BadToken::Malformed);
        }
        u64::from_str_radix(id, 16)
            .ok()
            .and_then(|id| i64::try_from(id).ok())
            .ok_or(BadToken::Malformed)
    }

    /// Whether `token` is the one of `purpose` for `id` at `email` (in constant time).
    pub(crate) fn check(
        &self,
        token: &str,
        purpose: Purpose,
        id: i64,
        email: &str,
    ) -> Result<(), BadToken> {
        let (_, mac) = token.split_once('.').ok_or(BadToken::Malformed)?;
        let given = hex::decode(mac).map_err(|_| BadToken::Malformed)?;
        self.mac(purpose, id, email)
            .verify_slice(&given)
            .map_err(|_| BadToken::Forged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_checks_only_for_its_purpose_id_address_and_secret() {
        let tokens = Tokens::new(b"a secret of some length".to_vec());
        let token = tokens.make(Purpose::Unsubscribe, 42, "a@example.com");
        assert_eq!(Tokens::id_of(&token), Ok(42));
        assert_eq!(
            tokens.check(&token, Purpose::Unsubscribe, 42, "a@example.com"),
            Ok(())
        );
        assert_eq!(
            tokens.check(&token, Purpose::Confirm, 42, "a@example.com"),
            Err(BadToken::Forged)
        );
        assert_eq!(
            tokens.check(&token, Purpose::Unsubscribe, 43, "a@example.com"),
            Err(BadToken::Forged)
        );
        assert_eq!(
            tokens.check(&token, Purpose::Unsubscribe, 42, "b@example.com"),
            Err(BadToken::Forged)
        );
        let other = Tokens::new(b"another secret".to_vec());
        assert_eq!(
            other.check(&token, Purpose::Unsubscribe, 42, "a@example.com"),
            Err(BadToken::Forged)
        );
        for bad in [
            "",
            "42",
            "zz.zz",
            &token[1..],
            &format!("{token}0"),
            "000000000000002a.",
            "ffffffffffffffff.0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(Tokens::id_of(bad), Err(BadToken::Malformed), "{bad}");
        }
        assert!(!format!("{tokens:?}").contains("secret of"));
    }
}

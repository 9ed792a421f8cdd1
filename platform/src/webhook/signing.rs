//! `whsec_` secrets and Standard Webhooks signatures: `v1,` + base64 of the HMAC-SHA256
//! of `{webhook-id}.{timestamp}.{body}`, one per secret that signs now.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SECRET_PREFIX: &str = "whsec_";

/// The decoded signing key of a `whsec_` secret.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    pub fn generate() -> (Secret, String) {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system provides randomness");
        (Secret(bytes.to_vec()), format!("{SECRET_PREFIX}{}", BASE64.encode(bytes)))
    }

    pub fn parse(text: &str) -> Result<Secret, String> {
        let bytes = text
            .strip_prefix(SECRET_PREFIX)
            .and_then(|b64| BASE64.decode(b64).ok())
            .ok_or_else(|| format!("must be `{SECRET_PREFIX}` followed by base64"))?;
        if !(24..=64).contains(&bytes.len()) {
            return Err("must hold 24 to 64 bytes".to_owned());
        }
        Ok(Secret(bytes))
    }

    /// The `webhook-signature` header: one `v1,…` per secret, space-separated.
    pub fn signatures(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
        secrets.iter().map(|s| s.sign(id, timestamp, body)).collect::<Vec<_>>().join(" ")
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(Secret::parse("whsec_short").is_err() && Secret::parse("nope").is_err());
        let (generated, text) = Secret::generate();
        assert_eq!(Secret::parse(&text).unwrap().0, generated.0);
    }
}

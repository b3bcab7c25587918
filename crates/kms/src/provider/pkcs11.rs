//! The PKCS#11 provider: the master key is a non-extractable AES-256 key in a token, and
//! wrapping and unwrapping run inside the token.

use std::sync::Arc;

use coffer_crypto::Pkcs11Token;
use zeroize::Zeroizing;

use super::{MasterKey, ProviderKind};
use crate::{KmsError, Result};

pub struct Pkcs11MasterKey {
    token: Arc<Pkcs11Token>,
    label: String,
}

fn provider_err(e: coffer_crypto::CryptoError) -> KmsError {
    KmsError::Provider(e.to_string())
}

impl Pkcs11MasterKey {
    /// The token key of an instance: `coffer-mk-<instance>`.
    pub fn label_for(instance: &str) -> String {
        format!("coffer-mk-{instance}")
    }

    /// Generates the master key inside the token.
    pub fn generate(token: Arc<Pkcs11Token>, label: &str) -> Result<Self> {
        token.generate_aes_key(label).map_err(provider_err)?;
        Ok(Self {
            token,
            label: label.to_owned(),
        })
    }

    /// Uses an existing token key.
    pub fn existing(token: Arc<Pkcs11Token>, label: &str) -> Result<Self> {
        if !token.has_key(label).map_err(provider_err)? {
            return Err(KmsError::Provider(format!(
                "the token has no key labelled {label}"
            )));
        }
        Ok(Self {
            token,
            label: label.to_owned(),
        })
    }

    pub fn protection(&self) -> Result<coffer_crypto::KeyProtection> {
        self.token.protection(&self.label).map_err(provider_err)
    }
}

impl MasterKey for Pkcs11MasterKey {
    fn wrap(&self, secret: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.token.seal(&self.label, aad, secret).map_err(provider_err)
    }

    fn unwrap(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.token
            .open_sealed(&self.label, aad, sealed)
            .map_err(provider_err)
    }

    fn verification_pattern(&self) -> String {
        format!("pkcs11:{}", self.label)
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Pkcs11
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The PKCS#11 provider on SoftHSM2. SoftHSM reads its configuration from `SOFTHSM2_CONF`
    //! when the module loads, so each test sets up a token in a fresh directory and runs
    //! itself again in a child process with that environment.

    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::Arc;

    use coffer_crypto::Pkcs11Token;

    use super::Pkcs11MasterKey;

    pub(crate) const LABEL: &str = "coffer-test";
    pub(crate) const PIN: &str = "1234";

    pub(crate) fn module() -> PathBuf {
        let candidates = [
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        ];
        std::env::var_os("COFFER_PKCS11_MODULE")
            .map(PathBuf::from)
            .or_else(|| candidates.iter().map(PathBuf::from).find(|p| p.exists()))
            .expect("SoftHSM2 is not installed (scripts/test installs the softhsm2 package)")
    }

    /// Runs `test` (this test's full path) in a child with a fresh SoftHSM token; in the child
    /// (`COFFER_SOFTHSM_CHILD` set), returns true so the test body runs.
    pub(crate) fn in_softhsm(test: &str) -> bool {
        if std::env::var_os("COFFER_SOFTHSM_CHILD").is_some() {
            return true;
        }
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens.display()),
        )
        .unwrap();
        let init = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                LABEL,
                "--so-pin",
                "5678",
                "--pin",
                PIN,
            ])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .expect("softhsm2-util is not installed (scripts/test installs the softhsm2 package)");
        assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env("SOFTHSM2_CONF", &conf)
            .env("COFFER_SOFTHSM_CHILD", "1")
            .env("COFFER_PKCS11_MODULE", module())
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&child.stdout);
        assert!(
            child.status.success() && out.contains("1 passed"),
            "{out}\n{}",
            String::from_utf8_lossy(&child.stderr)
        );
        false
    }

    pub(crate) fn token() -> Arc<Pkcs11Token> {
        Arc::new(Pkcs11Token::open(Path::new(&module()), LABEL, PIN).unwrap())
    }

    #[test]
    fn softhsm_provider_passes_the_contract() {
        if !in_softhsm("provider::pkcs11::tests::softhsm_provider_passes_the_contract") {
            return;
        }
        // Login state is per process: try the wrong PIN before any session logs in.
        let wrong = Pkcs11Token::open(Path::new(&module()), LABEL, "0000").unwrap_err();
        assert_eq!(wrong.to_string(), "PKCS#11: wrong PIN");
        let token = token();
        let a = Pkcs11MasterKey::generate(token.clone(), "mk-a").unwrap();
        let b = Pkcs11MasterKey::generate(token.clone(), "mk-b").unwrap();
        super::super::contract_suite(&a, &b);
        let p = a.protection().unwrap();
        assert!(p.sensitive && !p.extractable && p.never_extractable, "{p:?}");
        assert!(
            Pkcs11MasterKey::generate(token.clone(), "mk-a").is_err(),
            "labels are unique"
        );
        assert!(Pkcs11MasterKey::existing(token, "mk-missing").is_err());
    }
}

//! A PKCS#11 token holding non-extractable AES-256 keys, used for AES-GCM inside the token.
//!
//! The key never leaves the token: it is generated there (`Sensitive`, not `Extractable`) and
//! every encryption and decryption runs in the token. One session serves all callers behind a
//! mutex (a cryptoki `Session` is `Send` but not `Sync`).

use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::CryptoError;
use crate::aead::{NONCE_LEN, TAG_LEN};

pub struct Pkcs11Token {
    // Field order matters: the session must close before the library is finalized.
    session: Mutex<Session>,
    _ctx: Pkcs11,
}

impl fmt::Debug for Pkcs11Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pkcs11Token")
    }
}

fn p11(what: &'static str) -> impl Fn(P11Error) -> CryptoError {
    move |e| {
        // The cryptoki error names the failed call; the message stays generic.
        let _ = e;
        CryptoError::Pkcs11(what)
    }
}

/// What a key's attributes say about its protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyProtection {
    pub sensitive: bool,
    pub extractable: bool,
    pub never_extractable: bool,
}

impl Pkcs11Token {
    /// Loads the module, finds the token by label and logs in as the user.
    pub fn open(module: &Path, token_label: &str, pin: &str) -> Result<Self, CryptoError> {
        let ctx = Pkcs11::new(module).map_err(p11("loading the PKCS#11 module"))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(p11("initializing the PKCS#11 module")(e)),
        }
        let slot = ctx
            .get_slots_with_token()
            .map_err(p11("listing slots"))?
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .is_ok_and(|i| i.label().trim() == token_label)
            })
            .ok_or(CryptoError::Pkcs11("no token with that label"))?;
        let session = ctx.open_rw_session(slot).map_err(p11("opening a session"))?;
        match session.login(UserType::User, Some(&AuthPin::from(pin.to_owned()))) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(P11Error::Pkcs11(RvError::PinIncorrect, _)) => return Err(CryptoError::Pkcs11("wrong PIN")),
            Err(e) => return Err(p11("logging in")(e)),
        }
        Ok(Self {
            session: Mutex::new(session),
            _ctx: ctx,
        })
    }

    fn session(&self) -> Result<std::sync::MutexGuard<'_, Session>, CryptoError> {
        self.session
            .lock()
            .map_err(|_| CryptoError::Pkcs11("session lock poisoned"))
    }

    fn find(session: &Session, label: &str) -> Result<Option<ObjectHandle>, CryptoError> {
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        Ok(session
            .find_objects(&template)
            .map_err(p11("finding a key"))?
            .into_iter()
            .next())
    }

    /// Whether a key with this label exists.
    pub fn has_key(&self, label: &str) -> Result<bool, CryptoError> {
        let session = self.session()?;
        Ok(Self::find(&session, label)?.is_some())
    }

    /// Generates a persistent, sensitive, non-extractable AES-256 key inside the token.
    pub fn generate_aes_key(&self, label: &str) -> Result<(), CryptoError> {
        let session = self.session()?;
        if Self::find(&session, label)?.is_some() {
            return Err(CryptoError::Pkcs11("a key with that label exists"));
        }
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::ValueLen(32.into()),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
        ];
        session
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(p11("generating a key"))?;
        Ok(())
    }

    pub fn protection(&self, label: &str) -> Result<KeyProtection, CryptoError> {
        let session = self.session()?;
        let key = Self::find(&session, label)?.ok_or(CryptoError::Pkcs11("no such key"))?;
        let attrs = session
            .get_attributes(
                key,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                ],
            )
            .map_err(p11("reading key attributes"))?;
        let mut p = KeyProtection {
            sensitive: false,
            extractable: true,
            never_extractable: false,
        };
        for a in attrs {
            match a {
                Attribute::Sensitive(v) => p.sensitive = v,
                Attribute::Extractable(v) => p.extractable = v,
                Attribute::NeverExtractable(v) => p.never_extractable = v,
                _ => {}
            }
        }
        Ok(p)
    }

    /// AES-GCM inside the token: `iv || ciphertext || tag`.
    pub fn seal(&self, label: &str, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let session = self.session()?;
        let key = Self::find(&session, label)?.ok_or(CryptoError::Pkcs11("no such key"))?;
        let mut iv: [u8; NONCE_LEN] = crate::random_array();
        let params =
            GcmParams::new(&mut iv, aad, ((TAG_LEN * 8) as u64).into()).map_err(p11("GCM parameters"))?;
        let ct = session
            .encrypt(&Mechanism::AesGcm(params), key, plaintext)
            .map_err(p11("encrypting"))?;
        // The token may have chosen the IV itself (FIPS tokens do): read it back from the params.
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open_sealed(
        &self,
        label: &str,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (iv, ct) = sealed.split_at_checked(NONCE_LEN).ok_or(CryptoError::Decrypt)?;
        let mut iv: [u8; NONCE_LEN] = iv.try_into().map_err(|_| CryptoError::Decrypt)?;
        let session = self.session()?;
        let key = Self::find(&session, label)?.ok_or(CryptoError::Pkcs11("no such key"))?;
        let params =
            GcmParams::new(&mut iv, aad, ((TAG_LEN * 8) as u64).into()).map_err(|_| CryptoError::Decrypt)?;
        session
            .decrypt(&Mechanism::AesGcm(params), key, ct)
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Decrypt)
    }
}

//! Public mail providers: domains where anyone can register an address.
//!
//! An `auto` policy for such a domain would invite whoever asks: proving the mailbox proves
//! only that someone opened an account there a minute ago. Policy validation refuses an `auto`
//! policy whose domain is (or lies within, or with subdomains covers) one of these, unless the
//! admin says so explicitly (`allow_consumer_domain`); `approve` and `deny` policies are not
//! concerned, since a person or nobody decides.
//!
//! Source: each domain below is one whose provider lets anyone sign up for an address on its
//! own public sign-up page. The list was checked against the free-email-domains list
//! (<https://github.com/jgillich/free-email-domains>, the criteria "free to register and to use
//! by anyone, valid MX record") and HubSpot's list of free email domains its forms can block
//! (<https://knowledge.hubspot.com/forms/what-domains-are-blocked-when-using-the-forms-email-domains-to-block-feature>),
//! and kept to the large providers partners actually write from. It is not exhaustive: a
//! provider missing here is a policy the admin still has to think about, so extend it when one
//! comes up (keep it sorted; a test checks every entry parses as a canonical domain).

use super::email::Domain;

/// Consumer mail domains, canonical (lower-case ASCII), sorted.
pub const CONSUMER_DOMAINS: &[&str] = &[
    "aol.com",
    "bluewin.ch",
    "btinternet.com",
    "comcast.net",
    "freenet.de",
    "gmail.com",
    "gmx.at",
    "gmx.ch",
    "gmx.com",
    "gmx.de",
    "gmx.fr",
    "gmx.net",
    "googlemail.com",
    "hotmail.co.uk",
    "hotmail.com",
    "hotmail.de",
    "hotmail.es",
    "hotmail.fr",
    "hotmail.it",
    "hotmail.se",
    "icloud.com",
    "inbox.ru",
    "interia.pl",
    "laposte.net",
    "libero.it",
    "live.co.uk",
    "live.com",
    "live.de",
    "live.fr",
    "live.se",
    "mac.com",
    "mail.com",
    "mail.ru",
    "me.com",
    "msn.com",
    "naver.com",
    "orange.fr",
    "outlook.com",
    "outlook.de",
    "outlook.fr",
    "outlook.se",
    "pm.me",
    "posteo.de",
    "proton.me",
    "protonmail.com",
    "qq.com",
    "rocketmail.com",
    "seznam.cz",
    "t-online.de",
    "tuta.com",
    "tutanota.com",
    "web.de",
    "wp.pl",
    "yahoo.co.uk",
    "yahoo.com",
    "yahoo.de",
    "yahoo.es",
    "yahoo.fr",
    "yahoo.it",
    "yahoo.se",
    "yandex.com",
    "yandex.ru",
    "ymail.com",
    "zoho.com",
];

/// The consumer domain a policy for `domain` (with its subdomains when `include_subdomains`)
/// would admit addresses at, if any: the domain itself, a subdomain of a provider's domain, or
/// (with subdomains) a parent of one, label-wise.
pub fn covered_consumer_domain(domain: &Domain, include_subdomains: bool) -> Option<&'static str> {
    CONSUMER_DOMAINS.iter().copied().find(|listed| {
        let Ok(listed_domain) = Domain::parse(listed) else {
            return false;
        };
        domain.is_within(&listed_domain, true)
            || listed_domain.is_within(domain, include_subdomains)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Domain {
        Domain::parse(text).unwrap()
    }

    #[test]
    fn the_list_is_canonical_sorted_and_without_repeats() {
        for listed in CONSUMER_DOMAINS {
            assert_eq!(d(listed).as_str(), *listed, "{listed} is canonical");
        }
        let mut sorted = CONSUMER_DOMAINS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, CONSUMER_DOMAINS, "sorted, each once");
    }

    #[test]
    fn the_providers_the_portal_names_are_listed() {
        for provider in [
            "gmail.com",
            "outlook.com",
            "hotmail.com",
            "yahoo.com",
            "icloud.com",
            "gmx.de",
            "gmx.net",
            "web.de",
        ] {
            assert_eq!(covered_consumer_domain(&d(provider), false), Some(provider));
        }
    }

    #[test]
    fn subdomains_and_parents_of_a_provider_count_label_wise() {
        assert_eq!(
            covered_consumer_domain(&d("mail.gmail.com"), false),
            Some("gmail.com")
        );
        assert_eq!(
            covered_consumer_domain(&d("GMAIL.com"), false),
            Some("gmail.com")
        );
        // A policy for all of `co.uk` with subdomains admits hotmail.co.uk.
        assert_eq!(
            covered_consumer_domain(&d("co.uk"), true),
            Some("hotmail.co.uk")
        );
        assert_eq!(covered_consumer_domain(&d("co.uk"), false), None);
        for business in [
            "contoso.com",
            "evilgmail.com",
            "gmail.com.example",
            "outlook.contoso.com",
            "partner.example",
        ] {
            assert_eq!(
                covered_consumer_domain(&d(business), true),
                None,
                "{business}"
            );
        }
    }
}

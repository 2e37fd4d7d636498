//! The Qualys platforms and their API gateways.

use std::fmt;

/// A Qualys platform (`--platform`), naming its API gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Platform {
    /// gateway.qg1.apps.qualys.com
    Us1,
    /// gateway.qg2.apps.qualys.com
    Us2,
    /// gateway.qg3.apps.qualys.com
    Us3,
    /// gateway.qg4.apps.qualys.com
    Us4,
    /// gateway.qg1.apps.qualys.eu
    Eu1,
    /// gateway.qg2.apps.qualys.eu
    Eu2,
    /// gateway.qg1.apps.qualys.in
    In1,
    /// gateway.qg1.apps.qualys.ca
    Ca1,
    /// gateway.qg1.apps.qualys.ae
    Ae1,
    /// gateway.qg1.apps.qualys.co.uk
    Uk1,
    /// gateway.qg1.apps.qualys.com.au
    Au1,
    /// gateway.qg1.apps.qualysksa.com
    Ksa1,
}

impl Platform {
    /// The platform's gateway URL, without a trailing slash.
    pub fn gateway(self) -> &'static str {
        match self {
            Platform::Us1 => "https://gateway.qg1.apps.qualys.com",
            Platform::Us2 => "https://gateway.qg2.apps.qualys.com",
            Platform::Us3 => "https://gateway.qg3.apps.qualys.com",
            Platform::Us4 => "https://gateway.qg4.apps.qualys.com",
            Platform::Eu1 => "https://gateway.qg1.apps.qualys.eu",
            Platform::Eu2 => "https://gateway.qg2.apps.qualys.eu",
            Platform::In1 => "https://gateway.qg1.apps.qualys.in",
            Platform::Ca1 => "https://gateway.qg1.apps.qualys.ca",
            Platform::Ae1 => "https://gateway.qg1.apps.qualys.ae",
            Platform::Uk1 => "https://gateway.qg1.apps.qualys.co.uk",
            Platform::Au1 => "https://gateway.qg1.apps.qualys.com.au",
            Platform::Ksa1 => "https://gateway.qg1.apps.qualysksa.com",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = clap::ValueEnum::to_possible_value(self).map(|v| v.get_name().to_string()).unwrap_or_default();
        f.write_str(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn names_and_gateways() {
        assert_eq!(Platform::from_str("EU2", true).unwrap().gateway(), "https://gateway.qg2.apps.qualys.eu");
        assert_eq!(Platform::from_str("ksa1", true).unwrap().gateway(), "https://gateway.qg1.apps.qualysksa.com");
        assert_eq!(Platform::Us3.to_string(), "US3");
        assert_eq!(Platform::value_variants().len(), 12);
    }
}

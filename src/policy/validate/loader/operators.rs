//! Which `matchArgs` operators Tetragon's loader takes on which argument
//! types (`pkg/selectors/kernel.go`), and the forms of their values.

use std::net::IpAddr;

use ipnet::IpNet;

/// How Tetragon treats an argument type in `matchArgs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArgClass {
    Integer,
    Text,
    FilePath,
    Socket,
    SockAddr,
    UnixAddr,
    Other,
}

impl ArgClass {
    /// The class of a hook argument's `type`.
    pub(super) fn of(arg_type: &str) -> ArgClass {
        match arg_type {
            "int" | "sint8" | "int8" | "uint8" | "sint16" | "int16" | "uint16" | "uint32" | "sint32" | "int32"
            | "ulong" | "uint64" | "size_t" | "long" | "sint64" | "int64" | "syscall64" | "capability"
            | "kernel_cap_t" | "cap_inheritable" | "cap_permitted" | "cap_effective" | "bpf_cmd" => ArgClass::Integer,
            "string" | "char_buf" | "char_iovec" | "const_buf" | "filename" | "linux_binprm" | "data_loc" => {
                ArgClass::Text
            }
            "file" | "path" | "fd" | "dentry" => ArgClass::FilePath,
            "sock" | "socket" | "skb" => ArgClass::Socket,
            "sockaddr" => ArgClass::SockAddr,
            "sockaddr_un" => ArgClass::UnixAddr,
            _ => ArgClass::Other,
        }
    }

    /// The operators the loader accepts on an argument of this class;
    /// `None` where we do not know its rules (nothing is refused then).
    pub(super) fn operators(self) -> Option<Vec<&'static str>> {
        Some(match self {
            ArgClass::Socket => [ADDRESS_OPS, PORT_OPS, SOCKET_ONLY_OPS].concat(),
            ArgClass::SockAddr => vec!["SAddr", "NotSAddr", "SPort", "NotSPort", "SPortPriv", "NotSportPriv", "Family"],
            ArgClass::UnixAddr => [TEXT_OPS, &["Family"][..]].concat(),
            ArgClass::Text => TEXT_OPS.to_vec(),
            ArgClass::FilePath => [TEXT_OPS, &["FileType", "NotFileType"][..]].concat(),
            ArgClass::Integer => INT_OPS.to_vec(),
            ArgClass::Other => return None,
        })
    }
}

/// Operators on an address.
pub(super) const ADDRESS_OPS: &[&str] = &["SAddr", "NotSAddr", "DAddr", "NotDAddr"];
/// Operators on a port.
pub(super) const PORT_OPS: &[&str] =
    &["SPort", "NotSPort", "SPortPriv", "NotSportPriv", "DPort", "NotDPort", "DPortPriv", "NotDPortPriv"];
/// Port operators that take no values (the privileged range is implied).
pub(super) const PRIV_PORT_OPS: &[&str] = &["SPortPriv", "NotSportPriv", "DPortPriv", "NotDPortPriv"];
/// Operators only a socket has.
const SOCKET_ONLY_OPS: &[&str] = &["Protocol", "Family", "State"];
/// Operators on text.
const TEXT_OPS: &[&str] =
    &["Equal", "NotEqual", "Prefix", "NotPrefix", "Postfix", "NotPostfix", "SubString", "SubStringIgnCase"];
/// Operators on integers.
const INT_OPS: &[&str] = &[
    "Equal",
    "NotEqual",
    "GT",
    "LT",
    "GreaterThan",
    "LessThan",
    "Mask",
    "InRange",
    "NotInRange",
    "InMap",
    "NotInMap",
    "CapabilitiesGained",
];
/// Integer operators whose values sit in a fixed-size array in BPF.
pub(super) const CAPPED_INT_OPS: &[&str] =
    &["Equal", "NotEqual", "GT", "LT", "GreaterThan", "LessThan", "Mask", "InRange"];
/// The values of `FileType` and `NotFileType`.
pub(super) const FILE_TYPES: &[&str] = &["sock", "lnk", "reg", "blk", "dir", "chr", "fifo"];

/// A decimal or `0x` hexadecimal integer, as the loader parses them.
pub(super) fn is_number(text: &str) -> bool {
    let digits = text.trim().strip_prefix('-').unwrap_or(text.trim());
    if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

/// An address or a CIDR, as Tetragon's `DAddr`/`SAddr` take them.
pub(super) fn is_address(text: &str) -> bool {
    text.parse::<IpAddr>().is_ok() || text.parse::<IpNet>().is_ok()
}

/// A port or a `min:max` range.
pub(super) fn is_port_or_range(text: &str) -> bool {
    match text.split_once(':') {
        None => text.parse::<u16>().is_ok(),
        Some((low, high)) => matches!((low.parse::<u16>(), high.parse::<u16>()), (Ok(l), Ok(h)) if l <= h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_parsers() {
        assert!(is_number("0x10000000") && is_number("-1") && is_number("131072"));
        assert!(!is_number("O_WRONLY") && !is_number("") && !is_number("0x"));
        assert!(is_address("10.0.0.0/8") && is_address("fd00:ec2::254") && is_address("::/0"));
        assert!(!is_address("10.0.0.0/33") && !is_address("172.2") && !is_address("host"));
        assert!(is_port_or_range("3333") && is_port_or_range("1000:2000"));
        assert!(!is_port_or_range("70000") && !is_port_or_range("20:10"));
    }

    #[test]
    fn a_socket_takes_addresses_and_ports_and_an_integer_takes_neither() {
        let socket = ArgClass::of("sock").operators().unwrap();
        assert!(socket.contains(&"DAddr") && socket.contains(&"DPort") && !socket.contains(&"Equal"));
        let integer = ArgClass::of("int").operators().unwrap();
        assert!(integer.contains(&"Mask") && !integer.contains(&"DAddr"));
        assert_eq!(ArgClass::of("some_new_type").operators(), None);
    }
}

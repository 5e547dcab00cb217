//! An IP address as text, as `Display` writes it. The usual address, IPv4,
//! goes through `itoa`: `Display` was half of an access line's formatting
//! and most of a forwarded request's `X-Forwarded-For`.

use std::io::{self, Write};
use std::net::IpAddr;

/// Writes `ip` to `out`.
pub fn write(out: &mut impl Write, ip: IpAddr) -> io::Result<()> {
    match ip {
        IpAddr::V4(v4) => {
            let mut numbers = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.write_all(b".")?;
                }
                out.write_all(numbers.format(octet).as_bytes())?;
            }
            Ok(())
        }
        IpAddr::V6(_) => write!(out, "{ip}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_written_as_display_writes_it() {
        for text in [
            "0.0.0.0",
            "10.200.3.45",
            "255.255.255.255",
            "::1",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = text.parse().expect("an address");
            let mut out = Vec::new();
            write(&mut out, ip).expect("written");
            assert_eq!(out, ip.to_string().as_bytes());
        }
    }
}

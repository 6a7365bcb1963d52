//! Kubernetes resource quantities (`500m`, `1.5`, `32Gi`, `1e3`) as exact numbers, so Berth can
//! check them and compare them the way the API server does, without floating point.

/// A quantity in billionths (nano-units) of its base unit. Exact for every quantity Kubernetes
/// accepts (at most 3 decimal places below `m`, at most 2^63 in magnitude).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nanos(pub i128);

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a quantity; use a number with an optional suffix, such as 16, 500m, 1.5 or 32Gi"
)]
pub struct ParseError(pub String);

/// Parses a quantity as the API server does: `<sign><digits>[.<digits>]<suffix>` where the suffix is
/// a binary SI suffix (Ki…Ei), a decimal SI suffix (n, u, m, k, M, G, T, P, E) or an exponent (e3, E-2).
pub fn parse(text: &str) -> Result<Nanos, ParseError> {
    let err = || ParseError(text.to_owned());
    let s = text.trim();
    if s.is_empty() || s.len() > 64 {
        return Err(err());
    }
    let (negative, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(err());
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    // The number as an integer of "fraction digits" scale.
    let digits: String = format!("{whole}{fraction}");
    let mut value: i128 = 0;
    for d in digits.bytes() {
        value = value
            .checked_mul(10)
            .ok_or_else(err)?
            .checked_add(i128::from(d - b'0'))
            .ok_or_else(err)?;
    }
    let fraction_digits = i32::try_from(fraction.len()).map_err(|_| err())?;

    // Multiplier as (binary power of 1024, decimal exponent).
    let (binary, decimal): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (1, 0),
        "Mi" => (2, 0),
        "Gi" => (3, 0),
        "Ti" => (4, 0),
        "Pi" => (5, 0),
        "Ei" => (6, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        other => {
            let exponent = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or_else(err)?;
            (0, exponent.parse::<i32>().map_err(|_| err())?)
        }
    };
    // nanos = value * 1024^binary * 10^(decimal - fraction_digits + 9)
    let mut nanos = value
        .checked_mul(1024i128.checked_pow(binary).ok_or_else(err)?)
        .ok_or_else(err)?;
    let exponent = decimal - fraction_digits + 9;
    if exponent >= 0 {
        let scale = 10i128
            .checked_pow(u32::try_from(exponent).map_err(|_| err())?)
            .ok_or_else(err)?;
        nanos = nanos.checked_mul(scale).ok_or_else(err)?;
    } else {
        let scale = 10i128
            .checked_pow(u32::try_from(-exponent).map_err(|_| err())?)
            .ok_or_else(err)?;
        // The API server rounds up what it cannot represent.
        nanos = (nanos + scale - 1) / scale;
    }
    if nanos > i128::from(i64::MAX) * 1_000_000_000 {
        return Err(err());
    }
    Ok(Nanos(if negative { -nanos } else { nanos }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_kubernetes_accepts() {
        assert_eq!(parse("1"), Ok(Nanos(1_000_000_000)));
        assert_eq!(parse("500m"), Ok(Nanos(500_000_000)));
        assert_eq!(parse("0.5"), Ok(Nanos(500_000_000)));
        assert_eq!(parse("1.5"), parse("1500m"));
        assert_eq!(parse("1Gi"), parse("1024Mi"));
        assert_eq!(parse("1Ki"), Ok(Nanos(1024 * 1_000_000_000)));
        assert_eq!(parse("1k"), parse("1000"));
        assert_eq!(parse("1e3"), parse("1k"));
        assert_eq!(parse("1E-3"), parse("1m"));
        assert_eq!(parse("-2"), Ok(Nanos(-2_000_000_000)));
        assert_eq!(
            parse("32Gi"),
            Ok(Nanos(32 * 1024 * 1024 * 1024 * 1_000_000_000))
        );
        assert!(parse("16").unwrap() < parse("17").unwrap());
    }

    #[test]
    fn rejects_what_is_not_a_quantity() {
        for bad in [
            "",
            "Gi",
            "1.2.3",
            "one",
            "1GB",
            "1 Gi",
            "--1",
            "1e",
            "99999999999999999999Ei",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}

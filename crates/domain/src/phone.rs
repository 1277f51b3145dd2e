//! Australian phone numbers: parsing the forms that spreadsheets and CRMs produce
//! into E.164, classifying them by the ACMA numbering plan, and masking them for
//! display.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A phone number in E.164 form (`+61491570006`). Constructed only by
/// [`normalise`], so holding one means the number passed every rule.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneE164(String);

impl PhoneE164 {
    /// Rebuilds a number that was normalised before (for example after
    /// decryption). Returns `None` unless `value` is `+61` followed by digits.
    pub fn from_stored(value: &str) -> Option<Self> {
        let digits = value.strip_prefix("+61")?;
        if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The national significant number: the digits after `+61`.
    pub fn national_significant(&self) -> &str {
        &self.0[3..]
    }

    /// Masks all but the country code and the last three digits.
    pub fn masked(&self) -> String {
        mask_national_significant(self.national_significant())
    }
}

/// Masks a national significant number as `+61` and its last three digits.
pub fn mask_national_significant(nsn: &str) -> String {
    let hidden = nsn.len().saturating_sub(3);
    let mut out = String::with_capacity(4 + nsn.len());
    out.push_str("+61 ");
    out.extend(std::iter::repeat_n('*', hidden));
    out.push_str(&nsn[hidden..]);
    out
}

// Debug and Display never print the number, so a stray `{:?}` in a log line
// or an error cannot leak it.
impl fmt::Debug for PhoneE164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneE164({})", self.masked())
    }
}

impl fmt::Display for PhoneE164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Number types of the Australian numbering plan that the product tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NumberType {
    /// 04 and 05 mobiles.
    Mobile,
    /// 02, 03, 07 and 08 landlines.
    Geographic,
    /// 13 XX XX, 1300 and 1800 business numbers.
    NonGeographic,
    /// 19 premium-rate numbers.
    Premium,
    /// Emergency, special service, satellite and data ranges.
    Special,
    /// A number outside Australia.
    Foreign,
}

impl NumberType {
    pub fn as_str(self) -> &'static str {
        match self {
            NumberType::Mobile => "mobile",
            NumberType::Geographic => "geographic",
            NumberType::NonGeographic => "non_geographic",
            NumberType::Premium => "premium",
            NumberType::Special => "special",
            NumberType::Foreign => "foreign",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "mobile" => NumberType::Mobile,
            "geographic" => NumberType::Geographic,
            "non_geographic" => NumberType::NonGeographic,
            "premium" => NumberType::Premium,
            "special" => NumberType::Special,
            "foreign" => NumberType::Foreign,
            _ => return None,
        })
    }
}

/// A fix applied to the input that the importer reports as a row warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberWarning {
    /// Nine digits starting 2, 3, 4, 7 or 8: a spreadsheet dropped the trunk 0.
    TrunkZeroRestored,
    /// A trailing `.0` that a spreadsheet added to a numeric cell.
    TrailingDecimalRemoved,
}

impl NumberWarning {
    pub fn code(self) -> &'static str {
        match self {
            NumberWarning::TrunkZeroRestored => "trunk_zero_restored",
            NumberWarning::TrailingDecimalRemoved => "trailing_decimal_removed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            NumberWarning::TrunkZeroRestored => {
                "the number had nine digits; the leading 0 a spreadsheet drops was restored"
            }
            NumberWarning::TrailingDecimalRemoved => {
                "a trailing .0 added by a spreadsheet was removed from the number"
            }
        }
    }
}

/// Why a number was rejected. Messages never contain the number itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("the number is empty")]
    Missing,
    #[error(
        "the number is in scientific notation, so digits were lost; export the column as text"
    )]
    ScientificNotation,
    #[error("the number contains characters other than digits, spaces, brackets, dots, dashes and a leading +")]
    InvalidCharacters,
    #[error("the number has the wrong number of digits for an Australian number")]
    WrongLength,
    #[error("the number is not in the Australian numbering plan")]
    NotAllocated,
    #[error("{} numbers are not accepted for this campaign", .0.as_str())]
    Unsupported(NumberType),
}

impl NumberError {
    /// Stable import error code.
    pub fn code(&self) -> &'static str {
        match self {
            NumberError::Missing => "missing_to_number",
            NumberError::Unsupported(_) => "unsupported_number_type",
            _ => "invalid_to_number",
        }
    }
}

/// A number that passed normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalisedNumber {
    pub e164: PhoneE164,
    pub number_type: NumberType,
    pub warnings: Vec<NumberWarning>,
}

/// Which number types a campaign accepts besides mobiles and geographic numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NumberPolicy {
    pub allow_non_geographic: bool,
}

/// Normalises `input` to E.164 and classifies it.
///
/// Accepts national (`0412 345 678`, `(02) 9876 5432`), international
/// (`+61 412 345 678`, `61412345678`, `0061 …`, `0011 61 …`) and mixed
/// (`+61 (0)2 …`, `+61 0412 …`) forms with spaces, dots, hyphens, Unicode dashes,
/// non-breaking spaces and brackets.
///
/// # Errors
/// Returns a [`NumberError`] for empty input, scientific notation, letters,
/// wrong lengths, unallocated ranges, and number types that `policy` does not
/// accept (premium, special and foreign numbers never are).
pub fn normalise(input: &str, policy: NumberPolicy) -> Result<NormalisedNumber, NumberError> {
    let mut warnings = Vec::new();
    let mut text = strip_wrappers(input);
    if text.is_empty() {
        return Err(NumberError::Missing);
    }
    if is_scientific_notation(text) {
        return Err(NumberError::ScientificNotation);
    }
    if let Some(stripped) = text.strip_suffix(".0") {
        if !stripped.is_empty() && stripped.bytes().all(|b| b.is_ascii_digit()) {
            text = stripped;
            warnings.push(NumberWarning::TrailingDecimalRemoved);
        }
    }

    let (plus, digits) = collect_digits(text)?;
    let national = national_digits(plus, &digits, &mut warnings)?;
    let number_type = classify(&national)?;

    let accepted = match number_type {
        NumberType::Mobile | NumberType::Geographic => true,
        NumberType::NonGeographic => policy.allow_non_geographic,
        NumberType::Premium | NumberType::Special | NumberType::Foreign => false,
    };
    if !accepted {
        return Err(NumberError::Unsupported(number_type));
    }
    Ok(NormalisedNumber {
        e164: PhoneE164(format!("+61{national}")),
        number_type,
        warnings,
    })
}

/// Trims blanks and invisible characters, then removes what spreadsheets and
/// address books wrap around a number. These are the leading `'` that marks
/// an Excel cell as text, the `="…"` formula that keeps leading zeros, and
/// the `tel:` scheme of a phone link (RFC 3966). None of them changes a digit.
fn strip_wrappers(input: &str) -> &str {
    fn trim(text: &str) -> &str {
        text.trim_matches(|c: char| c.is_whitespace() || is_invisible(c))
    }
    let mut text = trim(input);
    if let Some(inner) = text
        .strip_prefix("=\"")
        .and_then(|rest| rest.strip_suffix('"'))
    {
        text = trim(inner);
    }
    if let Some(rest) = text.strip_prefix('\'') {
        text = trim(rest);
    }
    if text.len() > 4 && text.is_char_boundary(4) && text[..4].eq_ignore_ascii_case("tel:") {
        text = trim(&text[4..]);
    }
    text
}

/// Characters that show as nothing: byte order marks, zero-width spaces and
/// joiners, and direction marks that copying from a web page or an e-mail
/// leaves in a cell.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{feff}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `4.12E+08`, `4.91571E+08`, `491570006e0`: what a spreadsheet shows for a long
/// number in a General-formatted cell.
fn is_scientific_notation(text: &str) -> bool {
    let Some(position) = text.find(['e', 'E']) else {
        return false;
    };
    let (mantissa, exponent) = (&text[..position], &text[position + 1..]);
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !mantissa.is_empty()
        && mantissa
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b',')
        && mantissa.bytes().any(|b| b.is_ascii_digit())
        && !exponent.is_empty()
        && exponent.bytes().all(|b| b.is_ascii_digit())
}

/// Separators that people and spreadsheets put between digit groups.
pub fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '.'
            | '-'
            | '('
            | ')'
            | '/'
            | '\t'
            | '\u{00a0}'
            | '\u{2007}'
            | '\u{2009}'
            | '\u{202f}'
            | '\u{2000}'..='\u{200a}'
            | '\u{3000}'
            | '\u{ff08}'
            | '\u{ff09}'
            | '\u{ff0e}'
            | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{fe58}' | '\u{fe63}' | '\u{ff0d}'
    ) || is_invisible(c)
}

/// Returns the ASCII digit of an ASCII or full-width (East Asian input) digit.
fn ascii_digit(c: char) -> Option<char> {
    match c {
        '0'..='9' => Some(c),
        '\u{ff10}'..='\u{ff19}' => char::from_u32(u32::from(c) - 0xff10 + u32::from(b'0')),
        _ => None,
    }
}

/// Returns whether the number started with `+` and its digits.
fn collect_digits(text: &str) -> Result<(bool, String), NumberError> {
    let mut digits = String::with_capacity(text.len());
    let mut plus = false;
    for c in text.chars() {
        if let Some(digit) = ascii_digit(c) {
            digits.push(digit);
        } else if matches!(c, '+' | '\u{ff0b}') && digits.is_empty() && !plus {
            plus = true;
        } else if !is_separator(c) {
            return Err(NumberError::InvalidCharacters);
        }
    }
    if digits.is_empty() {
        return Err(NumberError::InvalidCharacters);
    }
    Ok((plus, digits))
}

/// Strips international and trunk prefixes and returns the national significant
/// number (without the trunk 0).
fn national_digits(
    plus: bool,
    digits: &str,
    warnings: &mut Vec<NumberWarning>,
) -> Result<String, NumberError> {
    if !plus && is_special_service(digits) {
        return Err(NumberError::Unsupported(NumberType::Special));
    }
    let international = if plus {
        Some(digits)
    } else if let Some(rest) = digits.strip_prefix("0011") {
        Some(rest)
    } else if let Some(rest) = digits.strip_prefix("00") {
        Some(rest)
    } else if digits.len() == 11 && digits.starts_with("61") {
        Some(digits)
    } else {
        None
    };

    if let Some(international) = international {
        let Some(rest) = international.strip_prefix("61") else {
            return Err(NumberError::Unsupported(NumberType::Foreign));
        };
        // `+61 (0)2 …` and `+61 0412 …` keep a trunk zero that E.164 drops.
        let rest = match rest.strip_prefix('0') {
            Some(without_trunk) if without_trunk.len() == 9 => without_trunk,
            _ => rest,
        };
        return Ok(rest.to_owned());
    }

    if let Some(rest) = digits.strip_prefix('0') {
        return Ok(rest.to_owned());
    }
    if digits.starts_with('1') {
        // 13 XX XX, 1300, 1800 and 19 numbers are dialled without a trunk 0.
        return Ok(digits.to_owned());
    }
    if digits.len() == 9 && matches!(digits.as_bytes()[0], b'2' | b'3' | b'4' | b'7' | b'8') {
        warnings.push(NumberWarning::TrunkZeroRestored);
        return Ok(digits.to_owned());
    }
    Err(NumberError::WrongLength)
}

/// Emergency (000, 112) and the text relay service (106).
fn is_special_service(digits: &str) -> bool {
    matches!(digits, "000" | "112" | "106")
}

/// Classifies a national significant number by the ACMA numbering plan.
fn classify(nsn: &str) -> Result<NumberType, NumberError> {
    if is_special_service(nsn) || nsn == "00" {
        return Err(NumberError::Unsupported(NumberType::Special));
    }
    let first = nsn.as_bytes().first().copied().unwrap_or(b'x');
    match first {
        b'2' | b'3' | b'7' | b'8' => fixed_length(nsn, 9, NumberType::Geographic),
        b'4' | b'5' => fixed_length(nsn, 9, NumberType::Mobile),
        b'1' => classify_one(nsn),
        _ => {
            if nsn.len() == 9 {
                Err(NumberError::NotAllocated)
            } else {
                Err(NumberError::WrongLength)
            }
        }
    }
}

fn fixed_length(nsn: &str, length: usize, kind: NumberType) -> Result<NumberType, NumberError> {
    if nsn.len() == length {
        Ok(kind)
    } else {
        Err(NumberError::WrongLength)
    }
}

/// The `1` ranges: 13 XX XX (6 digits), 1300 and 1800 (10 digits) are
/// non-geographic, 19 is premium; 14 (satellite), 15 (data) and 0198 (data,
/// written `198` after the trunk 0) are special.
fn classify_one(nsn: &str) -> Result<NumberType, NumberError> {
    if nsn.starts_with("19") && !nsn.starts_with("198") {
        return Err(NumberError::Unsupported(NumberType::Premium));
    }
    if nsn.starts_with("14") || nsn.starts_with("15") || nsn.starts_with("198") {
        return Err(NumberError::Unsupported(NumberType::Special));
    }
    if nsn.starts_with("1300") || nsn.starts_with("1800") {
        return fixed_length(nsn, 10, NumberType::NonGeographic);
    }
    if nsn.starts_with("13") {
        return fixed_length(nsn, 6, NumberType::NonGeographic);
    }
    Err(NumberError::NotAllocated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(input: &str) -> NormalisedNumber {
        normalise(input, NumberPolicy::default()).expect("number should be accepted")
    }

    fn reject(input: &str) -> NumberError {
        normalise(input, NumberPolicy::default()).expect_err("number should be rejected")
    }

    #[test]
    fn every_documented_mobile_form_normalises_alike() {
        for form in [
            "0491 570 156",
            "+61 491 570 156",
            "61491570156",
            "0061 491 570 156",
            "0011 61 491 570 156",
            "+61 0491 570 156",
            "0491-570-156",
            "0491.570.156",
            "0491\u{00a0}570\u{00a0}156",
            "0491\u{2013}570\u{2013}156",
            "(0491) 570 156",
        ] {
            let number = accept(form);
            assert_eq!(number.e164.as_str(), "+61491570156", "form {form:?}");
            assert_eq!(number.number_type, NumberType::Mobile, "form {form:?}");
            assert!(number.warnings.is_empty(), "form {form:?}");
        }
    }

    #[test]
    fn landline_forms_with_bracketed_trunk_zero() {
        for form in [
            "(02) 5550 1234",
            "+61 (0)2 5550 1234",
            "02-5550-1234",
            "61255501234",
        ] {
            let number = accept(form);
            assert_eq!(number.e164.as_str(), "+61255501234", "form {form:?}");
            assert_eq!(number.number_type, NumberType::Geographic);
        }
    }

    #[test]
    fn nine_digits_restore_trunk_zero_with_warning() {
        let number = accept("491570157");
        assert_eq!(number.e164.as_str(), "+61491570157");
        assert_eq!(number.warnings, vec![NumberWarning::TrunkZeroRestored]);

        let landline = accept("370100040");
        assert_eq!(landline.e164.as_str(), "+61370100040");
        assert_eq!(landline.warnings, vec![NumberWarning::TrunkZeroRestored]);
    }

    #[test]
    fn trailing_decimal_is_removed_with_warning() {
        let number = accept("491570158.0");
        assert_eq!(number.e164.as_str(), "+61491570158");
        assert!(number
            .warnings
            .contains(&NumberWarning::TrailingDecimalRemoved));
        assert!(number.warnings.contains(&NumberWarning::TrunkZeroRestored));
    }

    #[test]
    fn scientific_notation_is_rejected() {
        for form in ["4.91571E+08", "4.12E+08", "4.9157e8"] {
            assert_eq!(
                reject(form),
                NumberError::ScientificNotation,
                "form {form:?}"
            );
            assert_eq!(reject(form).code(), "invalid_to_number");
        }
    }

    #[test]
    fn letters_are_rejected() {
        assert_eq!(reject("0491 57A 632"), NumberError::InvalidCharacters);
        assert_eq!(reject("call me"), NumberError::InvalidCharacters);
    }

    #[test]
    fn empty_number_is_missing() {
        assert_eq!(reject("   ").code(), "missing_to_number");
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        for form in ["0491 570 15", "0491 570 1566", "+61 491 570", "12345"] {
            assert_eq!(reject(form).code(), "invalid_to_number", "form {form:?}");
        }
    }

    #[test]
    fn non_geographic_needs_campaign_setting() {
        for form in ["1800 160 401", "1300 975 707", "13 12 34"] {
            let error = reject(form);
            assert_eq!(
                error,
                NumberError::Unsupported(NumberType::NonGeographic),
                "{form:?}"
            );
            assert_eq!(error.code(), "unsupported_number_type");
            let allowed = normalise(
                form,
                NumberPolicy {
                    allow_non_geographic: true,
                },
            )
            .expect("allowed by the campaign");
            assert_eq!(allowed.number_type, NumberType::NonGeographic);
        }
        let number = normalise(
            "1800 160 401",
            NumberPolicy {
                allow_non_geographic: true,
            },
        );
        assert_eq!(
            number.map(|n| n.e164),
            Ok(PhoneE164("+611800160401".into()))
        );
    }

    #[test]
    fn premium_special_and_foreign_always_rejected() {
        let policy = NumberPolicy {
            allow_non_geographic: true,
        };
        let cases = [
            ("1900 654 321", NumberType::Premium),
            ("000", NumberType::Special),
            ("112", NumberType::Special),
            ("106", NumberType::Special),
            ("0145 123 456", NumberType::Special),
            ("0198 123 456", NumberType::Special),
            ("+44 20 7946 0018", NumberType::Foreign),
            ("0011 1 202 555 0143", NumberType::Foreign),
        ];
        for (form, kind) in cases {
            assert_eq!(
                normalise(form, policy),
                Err(NumberError::Unsupported(kind)),
                "form {form:?}"
            );
        }
    }

    #[test]
    fn masked_form_keeps_only_last_three_digits() {
        let number = accept("0491 570 006");
        assert_eq!(number.e164.masked(), "+61 ******006");
        assert_eq!(format!("{:?}", number.e164), "PhoneE164(+61 ******006)");
        assert!(!format!("{}", number.e164).contains("491570"));
    }

    #[test]
    fn spreadsheet_text_markers_are_removed() {
        for form in [
            "'0491 570 156",
            "'+61 491 570 156",
            "=\"0491570156\"",
            "=\" 0491 570 156 \"",
            "tel:+61-491-570-156",
            "TEL:0491570156",
        ] {
            let number = accept(form);
            assert_eq!(number.e164.as_str(), "+61491570156", "form {form:?}");
            assert!(number.warnings.is_empty(), "form {form:?}");
        }
        for form in [
            "tel:",
            "'",
            "=\"\"",
            "tel:+61491570156;ext=12",
            "''0491570156",
        ] {
            assert!(
                normalise(form, NumberPolicy::default()).is_err(),
                "form {form:?}"
            );
        }
    }

    #[test]
    fn full_width_digits_and_unicode_spaces_are_read() {
        for form in [
            "\u{ff10}\u{ff14}\u{ff19}\u{ff11} \u{ff15}\u{ff17}\u{ff10} \u{ff11}\u{ff15}\u{ff16}",
            "\u{ff0b}\u{ff16}\u{ff11}\u{3000}491\u{3000}570\u{3000}156",
            "\u{ff08}0491\u{ff09}570156",
            "0491\u{202f}570\u{2009}156",
            "0491\u{200b}570\u{200b}156",
            "\u{202a}0491 570 156\u{202c}",
            "0491\u{feff}570156",
        ] {
            let number = accept(form);
            assert_eq!(number.e164.as_str(), "+61491570156", "form {form:?}");
        }
        assert_eq!(reject("0491\u{0}570156"), NumberError::InvalidCharacters);
    }
}

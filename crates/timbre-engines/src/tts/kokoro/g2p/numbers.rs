//! English number words (hibari's `numbers.py`: the subset of num2words misaki reads with):
//! cardinal, ordinal, year, decimal.

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
const SCALES: [&str; 12] = [
    "",
    "thousand",
    "million",
    "billion",
    "trillion",
    "quadrillion",
    "quintillion",
    "sextillion",
    "septillion",
    "octillion",
    "nonillion",
    "decillion",
];

fn below_1000(mut n: u128) -> Vec<String> {
    let mut words = Vec::new();
    if n >= 100 {
        words.push(ONES[(n / 100) as usize].to_string());
        words.push("hundred".into());
        n %= 100;
        if n > 0 {
            words.push("and".into());
        }
    }
    if n >= 20 {
        let t = TENS[(n / 10) as usize];
        words.push(if !n.is_multiple_of(10) { format!("{t}-{}", ONES[(n % 10) as usize]) } else { t.to_string() });
    } else if n > 0 || words.is_empty() {
        words.push(ONES[n as usize].to_string());
    }
    words
}

/// num2words(n): "one thousand, two hundred and thirty-four".
pub fn cardinal(n: i128) -> String {
    if n < 0 {
        return format!("minus {}", cardinal(-n));
    }
    let mut n = n as u128;
    if n < 1000 {
        return below_1000(n).join(" ");
    }
    let mut groups = Vec::new();
    let mut scale = 0;
    while n > 0 {
        let g = n % 1000;
        n /= 1000;
        if g > 0 {
            let mut s = below_1000(g).join(" ");
            if scale > 0 {
                s.push(' ');
                s.push_str(SCALES.get(scale).copied().unwrap_or(""));
            }
            groups.push(s);
        }
        scale += 1;
    }
    groups.reverse();
    let last = groups.last().cloned().unwrap_or_default();
    let tail = last.split(" and ").last().unwrap_or("");
    if groups.len() > 1 && !tail.contains(' ') && !last.contains("hundred") {
        let head = groups[..groups.len() - 1].join(", ");
        return format!("{head} and {last}");
    }
    groups.join(", ")
}

fn ord_word(w: &str) -> String {
    match w {
        "one" => "first".into(),
        "two" => "second".into(),
        "three" => "third".into(),
        "five" => "fifth".into(),
        "eight" => "eighth".into(),
        "nine" => "ninth".into(),
        "twelve" => "twelfth".into(),
        _ if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        _ => format!("{w}th"),
    }
}

/// num2words(n, to="ordinal").
pub fn ordinal(n: i128) -> String {
    let c = cardinal(n);
    let (head, last) = match c.rfind(' ') {
        Some(i) => (&c[..=i], &c[i + 1..]),
        None => ("", c.as_str()),
    };
    let last = match last.rfind('-') {
        Some(i) => format!("{}-{}", &last[..i], ord_word(&last[i + 1..])),
        None => ord_word(last),
    };
    format!("{head}{last}")
}

/// num2words(n, to="year"): "nineteen oh-five", "two thousand and five", "twenty ten".
pub fn year(n: i128) -> String {
    let (high, low) = (n.div_euclid(100), n.rem_euclid(100));
    if high == 0 || (high % 10 == 0 && low < 10) || high >= 100 {
        return cardinal(n);
    }
    let lowtext = if low == 0 {
        "hundred".to_string()
    } else if low < 10 {
        format!("oh-{}", cardinal(low))
    } else {
        cardinal(low)
    };
    format!("{} {lowtext}", cardinal(high))
}

/// num2words(float(s)): "3.14" → "three point one four".
pub fn decimal(s: &str) -> String {
    let (ip, fp) = s.split_once('.').unwrap_or((s, ""));
    let fp = fp.trim_end_matches('0');
    let mut words = cardinal(ip.parse::<i128>().unwrap_or(0));
    if !fp.is_empty() {
        words.push_str(" point");
        for c in fp.chars() {
            if let Some(d) = c.to_digit(10) {
                words.push(' ');
                words.push_str(ONES[d as usize]);
            }
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_num2words() {
        assert_eq!(cardinal(1234), "one thousand, two hundred and thirty-four");
        assert_eq!(cardinal(1001), "one thousand and one");
        assert_eq!(cardinal(2000), "two thousand");
        assert_eq!(ordinal(23), "twenty-third");
        assert_eq!(ordinal(101), "one hundred and first");
        assert_eq!(year(1905), "nineteen oh-five");
        assert_eq!(year(2005), "two thousand and five");
        assert_eq!(year(2010), "twenty ten");
        assert_eq!(year(1900), "nineteen hundred");
        assert_eq!(decimal("3.140"), "three point one four");
    }
}

//! Deterministic, realistic customers for benchmarks: a seeded generator, names and cities with
//! real frequency skew (a few very common, a long tail), Unicode names, accounts of very different
//! sizes (a few merchants own most customers), optional fields sometimes absent.

use serde_json::{json, Map, Value};

/// SplitMix64: tiny, fast, and the same sequence on every machine for a given seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index into `len` items, skewed to the front: `power` 1 is uniform, higher is steeper.
    pub fn skewed(&mut self, len: usize, power: i32) -> usize {
        ((self.unit().powi(power) * len as f64) as usize).min(len - 1)
    }

    pub fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }
}

const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "María",
    "José",
    "Zoë",
    "Émile",
    "François",
    "Søren",
    "Łukasz",
    "Jürgen",
    "Ana",
    "Luis",
    "Mei",
    "Hiroshi",
    "Aarav",
    "Fatima",
    "Olga",
    "Nguyễn",
    "Ørjan",
    "Chloé",
    "Mohammed",
    "Ingrid",
    "Dmitri",
    "Ayşe",
    "Björn",
    "Siobhán",
    "Renée",
    "Álvaro",
    "Paweł",
];

const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Dubois",
    "Lefèvre",
    "Rossi",
    "Russo",
    "Nowak",
    "Kowalski",
    "Novák",
    "Søndergaard",
    "Ødegård",
    "Hamilton",
    "Nakamura",
    "Tanaka",
    "Kim",
    "Lee",
    "Park",
    "Chen",
    "Wang",
    "Singh",
    "Kumar",
    "O'Brien",
    "García Márquez",
    "Öztürk",
    "Ivanov",
    "Petrović",
    "Nguyễn",
    "Hämäläinen",
];

const CITIES: &[(&str, &str, &str)] = &[
    ("New York", "NY", "US"),
    ("Los Angeles", "CA", "US"),
    ("Chicago", "IL", "US"),
    ("Houston", "TX", "US"),
    ("Phoenix", "AZ", "US"),
    ("Philadelphia", "PA", "US"),
    ("San Antonio", "TX", "US"),
    ("San Diego", "CA", "US"),
    ("Dallas", "TX", "US"),
    ("Austin", "TX", "US"),
    ("London", "LND", "GB"),
    ("Manchester", "MAN", "GB"),
    ("Paris", "75", "FR"),
    ("Lyon", "69", "FR"),
    ("Saint-Étienne", "42", "FR"),
    ("Berlin", "BE", "DE"),
    ("München", "BY", "DE"),
    ("Köln", "NW", "DE"),
    ("Wien", "9", "AT"),
    ("Zürich", "ZH", "CH"),
    ("København", "84", "DK"),
    ("Århus", "82", "DK"),
    ("Oslo", "3", "NO"),
    ("Kraków", "12", "PL"),
    ("São Paulo", "SP", "BR"),
    ("Montréal", "QC", "CA"),
    ("Toronto", "ON", "CA"),
    ("Sydney", "NSW", "AU"),
    ("Tokyo", "13", "JP"),
    ("Seoul", "11", "KR"),
];

const STREETS: &[&str] = &[
    "Main St",
    "Oak Ave",
    "Maple Rd",
    "Rue de Rivoli",
    "Hauptstraße",
    "High Street",
    "Calle Mayor",
    "Via Roma",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "example.net",
    "corp.example.co.uk",
];
const ORGANIZATIONS: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Müller & Söhne",
    "Société Générale d'Exemple",
];

/// How many merchant accounts the data spreads over; account 1 is the largest.
pub const ACCOUNTS: usize = 2_000;

/// The `n`-th customer of the data set of `seed`: the same every time.
pub fn customer(seed: u64, n: u64) -> Value {
    let mut rng = Rng::new(seed ^ n.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let account = 1 + rng.skewed(ACCOUNTS, 4);
    let first = FIRST_NAMES[rng.skewed(FIRST_NAMES.len(), 2)];
    let last = LAST_NAMES[rng.skewed(LAST_NAMES.len(), 2)];
    let (city, state, country) = CITIES[rng.skewed(CITIES.len(), 2)];
    let mut fields = Map::new();
    // Every other customer has a code of the merchant's (the rest have their id as their code).
    if n % 2 == 0 {
        fields.insert("code".into(), json!(format!("ERP-{n:08}")));
    }
    fields.insert("accountId".into(), json!(account));
    fields.insert("firstName".into(), json!(first));
    fields.insert("lastName".into(), json!(last));
    if rng.chance(0.85) {
        let local: String = first
            .chars()
            .chain(last.chars())
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_lowercase();
        let domain = DOMAINS[rng.skewed(DOMAINS.len(), 1)];
        fields.insert("email".into(), json!(format!("{local}{n}@{domain}")));
    }
    if rng.chance(0.6) {
        let number = rng.next_u64() % 10_000_000;
        fields.insert(
            "phone".into(),
            json!(format!(
                "+1 (212) {:03}-{:04}",
                number / 10_000 % 1000,
                number % 10_000
            )),
        );
    }
    if rng.chance(0.3) {
        fields.insert(
            "organizationName".into(),
            json!(ORGANIZATIONS[rng.skewed(ORGANIZATIONS.len(), 2)]),
        );
    }
    if rng.chance(0.9) {
        let street = STREETS[rng.skewed(STREETS.len(), 1)];
        fields.insert(
            "street".into(),
            json!(format!("{} {street}", 1 + rng.next_u64() % 999)),
        );
        fields.insert("city".into(), json!(city));
        fields.insert("state".into(), json!(state));
        fields.insert(
            "zipCode".into(),
            json!(format!("{:05}", rng.next_u64() % 100_000)),
        );
        fields.insert("countryCode".into(), json!(country));
    }
    Value::Object(fields)
}

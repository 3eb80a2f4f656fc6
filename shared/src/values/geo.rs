//! Place names Meta's customer information parameters turn into codes: the ISO 3166-1 alpha-2
//! country codes (`country` is "the lowercase, 2-letter country code in ISO 3166-1 alpha-2";
//! the page's own example is `United States` → `us`) and the US states' 2-letter codes (`st`:
//! "Use the 2-character ANSI abbreviation code in lowercase" for US states; states outside the
//! US keep their name, lowercase, without punctuation or spaces). Source: Meta, Conversions API
//! › Customer Information Parameters, updated Jan 9, 2026 (docs/meta-reference.md).
//!
//! Names are matched after the key's own normalisation (lowercase letters only), so
//! `United States`, `united-states` and `UNITED STATES` are one name.

/// ISO 3166-1 alpha-2 codes with their English short names (and the common other names a CRM
/// writes), every name as letters only, lowercase. Sorted by code.
const COUNTRIES: &[(&str, &[&str])] = &[
    ("ad", &["andorra"]),
    ("ae", &["unitedarabemirates", "uae"]),
    ("af", &["afghanistan"]),
    ("ag", &["antiguaandbarbuda"]),
    ("ai", &["anguilla"]),
    ("al", &["albania"]),
    ("am", &["armenia"]),
    ("ao", &["angola"]),
    ("aq", &["antarctica"]),
    ("ar", &["argentina"]),
    ("as", &["americansamoa"]),
    ("at", &["austria"]),
    ("au", &["australia"]),
    ("aw", &["aruba"]),
    ("ax", &["alandislands", "ålandislands"]),
    ("az", &["azerbaijan"]),
    ("ba", &["bosniaandherzegovina"]),
    ("bb", &["barbados"]),
    ("bd", &["bangladesh"]),
    ("be", &["belgium"]),
    ("bf", &["burkinafaso"]),
    ("bg", &["bulgaria"]),
    ("bh", &["bahrain"]),
    ("bi", &["burundi"]),
    ("bj", &["benin"]),
    ("bl", &["saintbarthelemy", "saintbarthélemy"]),
    ("bm", &["bermuda"]),
    ("bn", &["bruneidarussalam", "brunei"]),
    ("bo", &["bolivia", "boliviaplurinationalstateof"]),
    (
        "bq",
        &["bonairesinteustatiusandsaba", "caribbeannetherlands"],
    ),
    ("br", &["brazil", "brasil"]),
    ("bs", &["bahamas", "thebahamas"]),
    ("bt", &["bhutan"]),
    ("bv", &["bouvetisland"]),
    ("bw", &["botswana"]),
    ("by", &["belarus"]),
    ("bz", &["belize"]),
    ("ca", &["canada"]),
    ("cc", &["cocoskeelingislands", "cocosislands"]),
    (
        "cd",
        &[
            "congodemocraticrepublicofthe",
            "democraticrepublicofthecongo",
            "drcongo",
        ],
    ),
    ("cf", &["centralafricanrepublic"]),
    ("cg", &["congo", "republicofthecongo"]),
    ("ch", &["switzerland"]),
    ("ci", &["cotedivoire", "côtedivoire", "ivorycoast"]),
    ("ck", &["cookislands"]),
    ("cl", &["chile"]),
    ("cm", &["cameroon"]),
    ("cn", &["china"]),
    ("co", &["colombia"]),
    ("cr", &["costarica"]),
    ("cu", &["cuba"]),
    ("cv", &["caboverde", "capeverde"]),
    ("cw", &["curacao", "curaçao"]),
    ("cx", &["christmasisland"]),
    ("cy", &["cyprus"]),
    ("cz", &["czechia", "czechrepublic"]),
    ("de", &["germany", "deutschland"]),
    ("dj", &["djibouti"]),
    ("dk", &["denmark"]),
    ("dm", &["dominica"]),
    ("do", &["dominicanrepublic"]),
    ("dz", &["algeria"]),
    ("ec", &["ecuador"]),
    ("ee", &["estonia"]),
    ("eg", &["egypt"]),
    ("eh", &["westernsahara"]),
    ("er", &["eritrea"]),
    ("es", &["spain", "españa", "espana"]),
    ("et", &["ethiopia"]),
    ("fi", &["finland"]),
    ("fj", &["fiji"]),
    ("fk", &["falklandislands", "falklandislandsmalvinas"]),
    ("fm", &["micronesia", "micronesiafederatedstatesof"]),
    ("fo", &["faroeislands"]),
    ("fr", &["france"]),
    ("ga", &["gabon"]),
    (
        "gb",
        &[
            "unitedkingdom",
            "unitedkingdomofgreatbritainandnorthernireland",
            "greatbritain",
            "uk",
            "england",
            "scotland",
            "wales",
            "northernireland",
        ],
    ),
    ("gd", &["grenada"]),
    ("ge", &["georgia"]),
    ("gf", &["frenchguiana"]),
    ("gg", &["guernsey"]),
    ("gh", &["ghana"]),
    ("gi", &["gibraltar"]),
    ("gl", &["greenland"]),
    ("gm", &["gambia", "thegambia"]),
    ("gn", &["guinea"]),
    ("gp", &["guadeloupe"]),
    ("gq", &["equatorialguinea"]),
    ("gr", &["greece"]),
    ("gs", &["southgeorgiaandthesouthsandwichislands"]),
    ("gt", &["guatemala"]),
    ("gu", &["guam"]),
    ("gw", &["guineabissau"]),
    ("gy", &["guyana"]),
    ("hk", &["hongkong"]),
    ("hm", &["heardislandandmcdonaldislands"]),
    ("hn", &["honduras"]),
    ("hr", &["croatia"]),
    ("ht", &["haiti"]),
    ("hu", &["hungary"]),
    ("id", &["indonesia"]),
    ("ie", &["ireland"]),
    ("il", &["israel"]),
    ("im", &["isleofman"]),
    ("in", &["india"]),
    ("io", &["britishindianoceanterritory"]),
    ("iq", &["iraq"]),
    ("ir", &["iran", "iranislamicrepublicof"]),
    ("is", &["iceland"]),
    ("it", &["italy", "italia"]),
    ("je", &["jersey"]),
    ("jm", &["jamaica"]),
    ("jo", &["jordan"]),
    ("jp", &["japan"]),
    ("ke", &["kenya"]),
    ("kg", &["kyrgyzstan"]),
    ("kh", &["cambodia"]),
    ("ki", &["kiribati"]),
    ("km", &["comoros"]),
    ("kn", &["saintkittsandnevis"]),
    ("kp", &["northkorea", "koreademocraticpeoplesrepublicof"]),
    ("kr", &["southkorea", "korearepublicof", "korea"]),
    ("kw", &["kuwait"]),
    ("ky", &["caymanislands"]),
    ("kz", &["kazakhstan"]),
    ("la", &["laos", "laopeoplesdemocraticrepublic"]),
    ("lb", &["lebanon"]),
    ("lc", &["saintlucia"]),
    ("li", &["liechtenstein"]),
    ("lk", &["srilanka"]),
    ("lr", &["liberia"]),
    ("ls", &["lesotho"]),
    ("lt", &["lithuania"]),
    ("lu", &["luxembourg"]),
    ("lv", &["latvia"]),
    ("ly", &["libya"]),
    ("ma", &["morocco"]),
    ("mc", &["monaco"]),
    ("md", &["moldova", "moldovarepublicof"]),
    ("me", &["montenegro"]),
    ("mf", &["saintmartin", "saintmartinfrenchpart"]),
    ("mg", &["madagascar"]),
    ("mh", &["marshallislands"]),
    ("mk", &["northmacedonia", "macedonia"]),
    ("ml", &["mali"]),
    ("mm", &["myanmar", "burma"]),
    ("mn", &["mongolia"]),
    ("mo", &["macao", "macau"]),
    ("mp", &["northernmarianaislands"]),
    ("mq", &["martinique"]),
    ("mr", &["mauritania"]),
    ("ms", &["montserrat"]),
    ("mt", &["malta"]),
    ("mu", &["mauritius"]),
    ("mv", &["maldives"]),
    ("mw", &["malawi"]),
    ("mx", &["mexico", "méxico"]),
    ("my", &["malaysia"]),
    ("mz", &["mozambique"]),
    ("na", &["namibia"]),
    ("nc", &["newcaledonia"]),
    ("ne", &["niger"]),
    ("nf", &["norfolkisland"]),
    ("ng", &["nigeria"]),
    ("ni", &["nicaragua"]),
    ("nl", &["netherlands", "thenetherlands", "holland"]),
    ("no", &["norway"]),
    ("np", &["nepal"]),
    ("nr", &["nauru"]),
    ("nu", &["niue"]),
    ("nz", &["newzealand"]),
    ("om", &["oman"]),
    ("pa", &["panama"]),
    ("pe", &["peru"]),
    ("pf", &["frenchpolynesia"]),
    ("pg", &["papuanewguinea"]),
    ("ph", &["philippines"]),
    ("pk", &["pakistan"]),
    ("pl", &["poland"]),
    ("pm", &["saintpierreandmiquelon"]),
    ("pn", &["pitcairn", "pitcairnislands"]),
    ("pr", &["puertorico"]),
    ("ps", &["palestine", "palestinestateof"]),
    ("pt", &["portugal"]),
    ("pw", &["palau"]),
    ("py", &["paraguay"]),
    ("qa", &["qatar"]),
    ("re", &["reunion", "réunion"]),
    ("ro", &["romania"]),
    ("rs", &["serbia"]),
    ("ru", &["russia", "russianfederation"]),
    ("rw", &["rwanda"]),
    ("sa", &["saudiarabia"]),
    ("sb", &["solomonislands"]),
    ("sc", &["seychelles"]),
    ("sd", &["sudan"]),
    ("se", &["sweden"]),
    ("sg", &["singapore"]),
    (
        "sh",
        &["sainthelena", "sainthelenaascensionandtristandacunha"],
    ),
    ("si", &["slovenia"]),
    ("sj", &["svalbardandjanmayen"]),
    ("sk", &["slovakia"]),
    ("sl", &["sierraleone"]),
    ("sm", &["sanmarino"]),
    ("sn", &["senegal"]),
    ("so", &["somalia"]),
    ("sr", &["suriname"]),
    ("ss", &["southsudan"]),
    ("st", &["saotomeandprincipe", "sãotoméandpríncipe"]),
    ("sv", &["elsalvador"]),
    ("sx", &["sintmaarten", "sintmaartendutchpart"]),
    ("sy", &["syria", "syrianarabrepublic"]),
    ("sz", &["eswatini", "swaziland"]),
    ("tc", &["turksandcaicosislands"]),
    ("td", &["chad"]),
    ("tf", &["frenchsouthernterritories"]),
    ("tg", &["togo"]),
    ("th", &["thailand"]),
    ("tj", &["tajikistan"]),
    ("tk", &["tokelau"]),
    ("tl", &["timorleste", "easttimor"]),
    ("tm", &["turkmenistan"]),
    ("tn", &["tunisia"]),
    ("to", &["tonga"]),
    ("tr", &["turkey", "türkiye", "turkiye"]),
    ("tt", &["trinidadandtobago"]),
    ("tv", &["tuvalu"]),
    ("tw", &["taiwan"]),
    ("tz", &["tanzania", "tanzaniaunitedrepublicof"]),
    ("ua", &["ukraine"]),
    ("ug", &["uganda"]),
    ("um", &["unitedstatesminoroutlyingislands"]),
    ("us", &["unitedstates", "unitedstatesofamerica", "usa"]),
    ("uy", &["uruguay"]),
    ("uz", &["uzbekistan"]),
    ("va", &["holysee", "vaticancity"]),
    ("vc", &["saintvincentandthegrenadines"]),
    ("ve", &["venezuela", "venezuelabolivarianrepublicof"]),
    ("vg", &["britishvirginislands", "virginislandsbritish"]),
    ("vi", &["usvirginislands", "virginislandsus"]),
    ("vn", &["vietnam"]),
    ("vu", &["vanuatu"]),
    ("wf", &["wallisandfutuna"]),
    ("ws", &["samoa"]),
    ("ye", &["yemen"]),
    ("yt", &["mayotte"]),
    ("za", &["southafrica"]),
    ("zm", &["zambia"]),
    ("zw", &["zimbabwe"]),
];

/// The 50 US states, the District of Columbia and the inhabited territories with their
/// 2-letter codes (FIPS / USPS), names as letters only, lowercase. Sorted by code.
const US_STATES: &[(&str, &str)] = &[
    ("ak", "alaska"),
    ("al", "alabama"),
    ("ar", "arkansas"),
    ("as", "americansamoa"),
    ("az", "arizona"),
    ("ca", "california"),
    ("co", "colorado"),
    ("ct", "connecticut"),
    ("dc", "districtofcolumbia"),
    ("de", "delaware"),
    ("fl", "florida"),
    ("ga", "georgia"),
    ("gu", "guam"),
    ("hi", "hawaii"),
    ("ia", "iowa"),
    ("id", "idaho"),
    ("il", "illinois"),
    ("in", "indiana"),
    ("ks", "kansas"),
    ("ky", "kentucky"),
    ("la", "louisiana"),
    ("ma", "massachusetts"),
    ("md", "maryland"),
    ("me", "maine"),
    ("mi", "michigan"),
    ("mn", "minnesota"),
    ("mo", "missouri"),
    ("mp", "northernmarianaislands"),
    ("ms", "mississippi"),
    ("mt", "montana"),
    ("nc", "northcarolina"),
    ("nd", "northdakota"),
    ("ne", "nebraska"),
    ("nh", "newhampshire"),
    ("nj", "newjersey"),
    ("nm", "newmexico"),
    ("nv", "nevada"),
    ("ny", "newyork"),
    ("oh", "ohio"),
    ("ok", "oklahoma"),
    ("or", "oregon"),
    ("pa", "pennsylvania"),
    ("pr", "puertorico"),
    ("ri", "rhodeisland"),
    ("sc", "southcarolina"),
    ("sd", "southdakota"),
    ("tn", "tennessee"),
    ("tx", "texas"),
    ("ut", "utah"),
    ("va", "virginia"),
    ("vi", "usvirginislands"),
    ("vt", "vermont"),
    ("wa", "washington"),
    ("wi", "wisconsin"),
    ("wv", "westvirginia"),
    ("wy", "wyoming"),
];

/// The ISO 3166-1 alpha-2 code of a country given as its code or its name (letters only,
/// lowercase), `None` for anything else.
pub fn country_code(letters: &str) -> Option<&'static str> {
    if letters.len() == 2 {
        return COUNTRIES
            .binary_search_by(|(code, _)| (*code).cmp(letters))
            .ok()
            .map(|i| COUNTRIES[i].0);
    }
    COUNTRIES
        .iter()
        .find(|(_, names)| names.contains(&letters))
        .map(|(code, _)| *code)
}

/// The 2-letter code of a US state (or DC, or an inhabited territory) given by its full name
/// (letters only, lowercase); `None` for any other name.
pub fn us_state_code(letters: &str) -> Option<&'static str> {
    US_STATES
        .iter()
        .find(|(_, name)| *name == letters)
        .map(|(code, _)| *code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_by_code_and_names_are_letters_only() {
        assert!(COUNTRIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(US_STATES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(COUNTRIES.len(), 249, "every ISO 3166-1 alpha-2 code");
        assert_eq!(US_STATES.len(), 56, "50 states, DC and five territories");
        let names = COUNTRIES
            .iter()
            .flat_map(|(_, names)| names.iter())
            .chain(US_STATES.iter().map(|(_, name)| name));
        for name in names {
            assert!(
                name.chars().all(|c| c.is_alphabetic() && !c.is_uppercase()),
                "{name}"
            );
        }
    }

    #[test]
    fn names_and_codes_read_as_codes() {
        assert_eq!(country_code("unitedstates"), Some("us"));
        assert_eq!(country_code("us"), Some("us"));
        assert_eq!(country_code("deutschland"), Some("de"));
        assert_eq!(country_code("zz"), None);
        assert_eq!(country_code("atlantis"), None);
        assert_eq!(us_state_code("california"), Some("ca"));
        assert_eq!(us_state_code("newsouthwales"), None);
    }
}

//! The offline default corpus: synthetic TinyStories-like stories with long-range constraints.
//!
//! Every story is plain, simple English built from a closed vocabulary, and carries three
//! constraints that a checker can recover from the text alone:
//!
//! 1. **The hero acts at the end.** The first sentence introduces the hero as
//!    `"... a <adjective> girl|boy named <Hero>."`; the found sentence (below) has the hero's
//!    name as its subject.
//! 2. **Pronouns agree with the hero.** A second character, the helper, is always of the other
//!    gender (names come from [`GIRL_NAMES`] and [`BOY_NAMES`], which do not overlap). Every
//!    sentence follows one convention: the first character reference in a sentence (a name, or
//!    one of he/him/his/himself/she/her/herself) is its subject; a sentence whose first reference
//!    is a pronoun continues the subject of the last sentence that referred to a character; and
//!    every third-person singular pronoun in a sentence refers to that sentence's subject.
//! 3. **The lost object is the found object.** Exactly one sentence contains the word `lost`,
//!    and it ends `"<Hero> lost his|her <adjective> <noun>."`; exactly one sentence contains
//!    `found his|her`, and it reads `"<Hero> found his|her <adjective> <noun> <place>."`. Objects
//!    are always one adjective plus a one-word noun. The helper may show an object of their own
//!    (a distractor, never the hero's noun), and searches may turn up other things
//!    (`"found a small rock"`), but never with `found his|her`.
//!
//! Between the loss and the find come zero to a few middle episodes (searches in the wrong
//! place, the helper helping or distracting, weather, an animal) of varying length, so the
//! distance between the two constraint-bearing sentences varies (about 10 to 40 words). Stories
//! have [`MIN_WORDS`] to [`MAX_WORDS`] words (about 40 to 100 tokens, so a whole story fits the
//! quickstart's 128-token context); paragraphs are separated by a blank line.
//!
//! **Difficulty.** The corpus is tuned so that the quickstart model (4 layers, width 128, 1,000
//! steps on the CPU) reaches a mid-range validity rate rather than 0% or 100%: the cast and
//! objects are small on purpose ([`GIRL_NAMES`], [`BOY_NAMES`], `OBJECT_ADJS` × `OBJECT_NOUNS`),
//! stories are short and have few middle episodes. Larger lists and more episodes make the
//! constraints harder (the earlier 24 names per gender, 17 × 24 objects and 80-200-word stories
//! left the quickstart at 0%).
//!
//! [`write_corpus`] writes the stories in the Hugging Face parquet layout (a `text` column) with
//! the constraint facts in extra columns.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// File name of the training split inside the output directory.
pub const TRAIN_FILE: &str = "train-00000-of-00001.parquet";
/// File name of the validation split inside the output directory.
pub const VALIDATION_FILE: &str = "validation-00000-of-00001.parquet";
/// Most rows in one parquet row group.
pub const ROW_GROUP_ROWS: usize = 1024;
/// Fewest words in a story.
pub const MIN_WORDS: usize = 30;
/// Most words in a story.
pub const MAX_WORDS: usize = 75;

/// Names used only for girls; disjoint from [`BOY_NAMES`] and from every other word the
/// generator writes, so a name in the text always means a character.
pub const GIRL_NAMES: &[&str] = &["Lily", "Mia", "Anna"];

/// Names used only for boys; disjoint from [`GIRL_NAMES`].
pub const BOY_NAMES: &[&str] = &["Tom", "Ben", "Max"];

/// Grammatical gender of a character, which fixes its pronouns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gender {
    Female,
    Male,
}

impl Gender {
    /// `"female"` or `"male"`, as stored in the `hero_gender` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Female => "female",
            Gender::Male => "male",
        }
    }

    /// The other gender.
    pub fn other(self) -> Gender {
        match self {
            Gender::Female => Gender::Male,
            Gender::Male => Gender::Female,
        }
    }

    /// Subject pronoun, lower case: she / he.
    pub fn subject(self) -> &'static str {
        match self {
            Gender::Female => "she",
            Gender::Male => "he",
        }
    }

    /// Object pronoun: her / him.
    pub fn object(self) -> &'static str {
        match self {
            Gender::Female => "her",
            Gender::Male => "him",
        }
    }

    /// Possessive determiner: her / his.
    pub fn possessive(self) -> &'static str {
        match self {
            Gender::Female => "her",
            Gender::Male => "his",
        }
    }

    /// The noun in the opening sentence: girl / boy.
    pub fn child(self) -> &'static str {
        match self {
            Gender::Female => "girl",
            Gender::Male => "boy",
        }
    }

    /// The names a character of this gender may have.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Gender::Female => GIRL_NAMES,
            Gender::Male => BOY_NAMES,
        }
    }

    /// The gender whose third-person singular pronoun this word is (any case), if it is one.
    pub fn of_pronoun(word: &str) -> Option<Gender> {
        match word.to_ascii_lowercase().as_str() {
            "she" | "her" | "hers" | "herself" => Some(Gender::Female),
            "he" | "him" | "his" | "himself" => Some(Gender::Male),
            _ => None,
        }
    }
}

/// The gender of a character name the generator uses, if `name` is one (exact case).
pub fn gender_of_name(name: &str) -> Option<Gender> {
    if GIRL_NAMES.contains(&name) {
        Some(Gender::Female)
    } else if BOY_NAMES.contains(&name) {
        Some(Gender::Male)
    } else {
        None
    }
}

/// One generated story and the facts its constraints are checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthStory {
    pub text: String,
    /// The character named in the first sentence, who loses and finds the object.
    pub hero: String,
    pub hero_gender: Gender,
    /// The second character, always of the other gender.
    pub helper: String,
    /// Adjective and noun of the lost-and-found object, e.g. `"red ball"`.
    pub object: String,
}

/// What [`write_corpus`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorpusSummary {
    pub train_path: PathBuf,
    pub validation_path: PathBuf,
    pub train_stories: usize,
    pub validation_stories: usize,
}

// ---------------------------------------------------------------------------------------------
// Vocabulary. Templates use `{key}` placeholders, filled by `Cast::fill`:
//   H hero name, S/s hero subject pronoun (capitalised/lower), O hero object pronoun,
//   P/PC hero possessive (lower/capitalised), G helper name, GS/gs/GO/GP helper pronouns,
//   kind/gkind girl|boy, obj "adj noun", aobj "a|an adj noun", noun, gobj, gnoun, to, at,
//   plus per-call extras (spot, item, day, ...). Values may themselves hold placeholders.
// ---------------------------------------------------------------------------------------------

const INTROS: &[&str] = &[
    "Once upon a time, there was a {hadj} {kind} named {H}.",
    "Once upon a time, there lived a {hadj} {kind} named {H}.",
    "There once was a {hadj} {kind} named {H}.",
    "Long ago, in a small town, there was a {hadj} {kind} named {H}.",
    "Once there was a {hadj} {kind} named {H}.",
    "In a little village, there lived a {hadj} {kind} named {H}.",
    "Not long ago, there was a {hadj} {kind} named {H}.",
];

const HERO_ADJS: &[&str] = &[
    "little", "happy", "kind", "curious", "brave", "shy", "sweet", "playful", "smart", "cheerful",
    "good", "young", "friendly", "busy",
];

const SETUPS: &[&str] = &[
    "{S} was {age} years old.",
    "{S} lived in a {home} with {P} mom and dad.",
    "{S} loved to {hobby}.",
    "Every day, {s} liked to {hobby}.",
    "{S} had a big smile and a kind heart.",
    "{H} was always happy to {hobby}.",
];

const AGES: &[&str] = &["three", "four", "five", "six", "seven"];

const HOMES: &[&str] = &[
    "small house",
    "big white house",
    "little blue house",
    "cozy house near the woods",
    "house by the sea",
    "tall house in the town",
];

const HOBBIES: &[&str] = &[
    "play outside",
    "sing songs",
    "draw pictures",
    "run and jump",
    "read books",
    "look at the clouds",
    "help {P} mom",
    "dance",
    "play games",
    "pick flowers",
    "build with blocks",
];

/// (template, whether a follow-up sentence about the object may come after it)
const OBJECT_INTROS: &[(&str, bool)] = &[
    ("{H} had {aobj}.", true),
    ("{H} had {aobj} that {s} loved very much.", false),
    ("{PC} favorite toy was {aobj}.", true),
    ("{H} got {aobj} for {P} birthday.", true),
];

const OBJECT_FOLLOWS: &[&str] = &[
    "{S} loved it very much.",
    "{S} took it everywhere.",
    "It was {P} best thing.",
    "{S} played with it every day.",
];

const OBJECT_ADJS: &[&str] = &["red", "blue", "green", "yellow"];

const OBJECT_NOUNS: &[&str] = &["ball", "doll", "kite", "hat", "book"];

const HELPER_EARLY: &[&str] = &[
    "{H} had a friend named {G}.",
    "{H} had a good friend named {G}.",
    "{H}'s best friend was a {gkind} named {G}.",
    "A {gkind} named {G} lived next door to {H}.",
    "{H} often played with a {gkind} named {G}.",
];

const HELPER_EARLY_FOLLOWS: &[&str] = &[
    "{G} and {H} liked to play together.",
    "They played together every day.",
    "{G} was funny and kind.",
    "{G} lived just down the street.",
];

const HELPER_LATE: &[&str] = &[
    "Just then, {H}'s friend {G} came by.",
    "Just then, a {gkind} named {G} came by.",
    "Soon, a {gkind} named {G} walked up to {H}.",
    "Then {H}'s friend {G} came to play.",
];

const HELPER_LATE_FOLLOWS_HELPS: &[&str] = &[
    "{G} saw that {H} was sad.",
    "{G} asked, \"Why are you sad?\"",
];

const HELPER_LATE_FOLLOWS_DISTRACTS: &[&str] = &["{G} was full of energy.", "{G} wanted to play."];

struct Setting {
    /// "went {to}"
    to: &'static str,
    /// "play {at}"
    at: &'static str,
    /// Places to search, each a prepositional phrase; one is where the object turns up.
    spots: &'static [&'static str],
}

const SETTINGS: &[Setting] = &[
    Setting {
        to: "to the park",
        at: "at the park",
        spots: &[
            "under the slide",
            "behind the big tree",
            "in the tall grass",
            "near the pond",
            "under the bench",
            "next to the swings",
        ],
    },
    Setting {
        to: "to the garden",
        at: "in the garden",
        spots: &[
            "under a big bush",
            "behind the flowers",
            "next to the fence",
            "in the tall grass",
            "under the apple tree",
            "near the little pond",
        ],
    },
    Setting {
        to: "to {P} room",
        at: "at home",
        spots: &[
            "under the bed",
            "behind the door",
            "in the toy box",
            "under the big chair",
            "next to the sofa",
            "behind the curtain",
        ],
    },
    Setting {
        to: "to the beach",
        at: "at the beach",
        spots: &[
            "in the sand",
            "near the big rocks",
            "behind a sand castle",
            "under an old blanket",
            "next to the water",
            "in a little hole",
        ],
    },
    Setting {
        to: "into the woods",
        at: "in the woods",
        spots: &[
            "under a big log",
            "behind a tree",
            "near the little stream",
            "in a pile of leaves",
            "next to a big rock",
            "under a bush",
        ],
    },
    Setting {
        to: "to the farm",
        at: "on the farm",
        spots: &[
            "in the barn",
            "behind the hay",
            "near the pig pen",
            "under the old cart",
            "next to the fence",
            "by the chicken coop",
        ],
    },
    Setting {
        to: "to the school yard",
        at: "in the school yard",
        spots: &[
            "under the slide",
            "behind the big tree",
            "next to the fence",
            "near the sand box",
            "under the steps",
            "by the swings",
        ],
    },
];

const DAYS: &[&str] = &[
    "sunny", "bright", "warm", "cold", "windy", "cloudy", "lovely", "quiet", "nice",
];

const TRIPS: &[&str] = &[
    "One {day} day, {H} went {to} with {P} {noun}.",
    "{H} took {P} {noun} {to} to play.",
    "In the morning, {H} went {to} with {P} {noun}.",
    "One {day} morning, {H} wanted to play {at}, so {s} went {to}.",
    "After lunch, {H} and {P} {noun} went {to}.",
];

const WEATHERS: &[&str] = &[
    "The sun was warm and the sky was blue.",
    "The birds were singing in the trees.",
    "A soft wind was blowing.",
    "It was a perfect day to play.",
    "There were big white clouds in the sky.",
    "The air was fresh and cool.",
];

const PLAYS: &[&str] = &[
    "{S} played with {P} {noun} for a long time.",
    "{S} had so much fun {at}.",
    "{S} ran and played and laughed.",
    "{S} sang a happy song as {s} played.",
];

const LOSS_PREFIXES: &[&str] = &[
    "After a while,",
    "Later that day,",
    "But then,",
    "Suddenly,",
    "Soon,",
    "Sadly,",
    "Before long,",
];

const REACTIONS: &[&str] = &[
    "{S} looked around, but {s} could not see it anywhere.",
    "{S} felt very sad.",
    "{S} began to cry.",
    "{S} said, \"Where is my {noun}?\"",
    "{S} did not know what to do.",
    "{H} was very upset.",
];

const ITEMS: &[&str] = &[
    "a small rock",
    "a green leaf",
    "a long stick",
    "an old sock",
    "a white feather",
    "a little bug",
    "a pine cone",
    "a round pebble",
    "a piece of paper",
    "some dry leaves",
    "a sleepy snail",
    "an empty box",
];

const ANIMALS: &[&str] = &[
    "dog", "cat", "bird", "duck", "rabbit", "squirrel", "frog", "puppy", "kitten",
];

const ANIMAL_ADJS: &[&str] = &["little", "small", "friendly", "fluffy", "brown", "gray"];

const ANIMAL_ACTS: &[&str] = &[
    "ran past",
    "hopped by",
    "sat on a rock",
    "came to say hello",
];

const GAMES: &[&str] = &["tag", "hide and seek", "a new game", "pretend", "catch"];

const HINTS: &[&str] = &[
    "{G} said, \"Look {spot}!\"",
    "Then {G} saw something {spot}.",
    "{G} had an idea.",
    "{G} pointed and said, \"What is that {spot}?\"",
];

const SOLO_HINTS: &[&str] = &[
    "{H} looked one more time.",
    "{H} had one more idea.",
    "{H} went to look {spot}.",
];

const FOUND_PREFIXES: &[&str] = &[
    "At last,",
    "Finally,",
    "Then",
    "After a long time,",
    "Just then,",
    "Soon,",
    "In the end,",
];

const JOYS: &[&str] = &[
    "{S} was so happy!",
    "{S} was very happy.",
    "{S} jumped for joy.",
    "{S} hugged {P} {noun} tight.",
    "{S} smiled a big smile.",
];

const CODAS_ANY: &[&str] = &[
    "{H} and {G} played with the {noun} until it was time to go home.",
    "From that day on, {H} always kept {P} {noun} in a safe place.",
    "{H} learned to take good care of {P} things.",
    "Then {H} went home with a big smile.",
    "{H} shared {P} {noun} with {G}, and they played together all day.",
];

const CODAS_HELPS: &[&str] = &["{H} said, \"Thank you, {G}!\"", "{H} gave {G} a big hug."];

const CODAS_DISTRACTS: &[&str] = &["{H} ran to show {G}."];

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

/// Uniform choice from a non-empty constant list.
fn pick<R: Rng + ?Sized, T: Copy>(rng: &mut R, items: &[T]) -> T {
    // Only called on the non-empty constant lists above; an empty slice would be a bug here.
    items[rng.random_range(0..items.len())]
}

/// `n` distinct choices (fewer if the list is shorter), in random order.
fn pick_distinct<R: Rng + ?Sized, T: Copy>(rng: &mut R, items: &[T], n: usize) -> Vec<T> {
    let mut all = items.to_vec();
    all.shuffle(rng);
    all.truncate(n);
    all
}

/// "a" or "an" before a phrase.
fn with_article(phrase: &str) -> String {
    let article = match phrase.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    };
    format!("{article} {phrase}")
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

fn words(sentences: &[String]) -> usize {
    sentences.iter().map(|s| s.split_whitespace().count()).sum()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Helps,
    Distracts,
}

/// Everything fixed for one story, and the template filler.
struct Cast {
    hero: &'static str,
    gender: Gender,
    helper: &'static str,
    adj: &'static str,
    noun: &'static str,
    helper_adj: &'static str,
    helper_noun: &'static str,
    setting: &'static Setting,
    role: Role,
}

impl Cast {
    /// Replace `{key}` placeholders; values are filled in turn (they hold no extras).
    fn fill(&self, template: &str, extra: &[(&str, &str)]) -> String {
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                // An unmatched brace is copied as is (the tests reject braces in stories).
                out.push_str(&rest[open..]);
                return out;
            };
            self.expand(&after[..close], extra, &mut out);
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        out
    }

    fn expand(&self, key: &str, extra: &[(&str, &str)], out: &mut String) {
        if let Some((_, value)) = extra.iter().find(|(k, _)| *k == key) {
            out.push_str(&self.fill(value, &[]));
            return;
        }
        let g = self.gender;
        let h = g.other();
        let value: String = match key {
            "H" => self.hero.to_string(),
            "S" => capitalise(g.subject()),
            "s" => g.subject().to_string(),
            "O" => g.object().to_string(),
            "P" => g.possessive().to_string(),
            "PC" => capitalise(g.possessive()),
            "G" => self.helper.to_string(),
            "GS" => capitalise(h.subject()),
            "gs" => h.subject().to_string(),
            "GO" => h.object().to_string(),
            "GP" => h.possessive().to_string(),
            "kind" => g.child().to_string(),
            "gkind" => h.child().to_string(),
            "obj" => self.object(),
            "aobj" => with_article(&self.object()),
            "noun" => self.noun.to_string(),
            "gobj" => format!("{} {}", self.helper_adj, self.helper_noun),
            "gnoun" => self.helper_noun.to_string(),
            "to" => self.fill(self.setting.to, &[]),
            "at" => self.fill(self.setting.at, &[]),
            // Unknown keys are left visible; the tests reject braces in stories.
            _ => format!("{{{key}}}"),
        };
        out.push_str(&value);
    }

    fn object(&self) -> String {
        format!("{} {}", self.adj, self.noun)
    }
}

/// The kinds of middle episode between the loss and the find.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Episode {
    Search,
    Sad,
    Weather,
    Animal,
    Think,
    Ask,
    HelperSearch,
    Hug,
    PlayInstead,
    Show,
    Offer,
    RunOff,
}

impl Episode {
    /// Relative weight of the episode, 0 where it does not fit the helper's role.
    fn weight(self, role: Role) -> u32 {
        match (self, role) {
            (Episode::Search, _) => 4,
            (Episode::Sad | Episode::Weather | Episode::Animal | Episode::Think, _) => 1,
            (Episode::Show | Episode::Offer, _) => 1,
            (Episode::Ask | Episode::HelperSearch | Episode::Hug, Role::Helps) => 2,
            (Episode::PlayInstead | Episode::RunOff, Role::Distracts) => 2,
            _ => 0,
        }
    }

    /// Whether the episode may appear more than once in a story.
    fn repeatable(self) -> bool {
        matches!(self, Episode::Search | Episode::HelperSearch)
    }
}

const EPISODES: &[Episode] = &[
    Episode::Search,
    Episode::Sad,
    Episode::Weather,
    Episode::Animal,
    Episode::Think,
    Episode::Ask,
    Episode::HelperSearch,
    Episode::Hug,
    Episode::PlayInstead,
    Episode::Show,
    Episode::Offer,
    Episode::RunOff,
];

/// Middle-episode state: which episodes were used, and which wrong places are left to search.
struct Middle {
    used: Vec<Episode>,
    wrong_spots: Vec<&'static str>,
}

impl Middle {
    fn next<R: Rng + ?Sized>(&mut self, rng: &mut R, cast: &Cast) -> Vec<String> {
        let candidates: Vec<(Episode, u32)> = EPISODES
            .iter()
            .map(|&e| (e, e.weight(cast.role)))
            .filter(|&(e, w)| w > 0 && (e.repeatable() || !self.used.contains(&e)))
            .collect();
        let total: u32 = candidates.iter().map(|&(_, w)| w).sum();
        let mut ticket = rng.random_range(0..total.max(1));
        let mut chosen = Episode::Search;
        for &(e, w) in &candidates {
            if ticket < w {
                chosen = e;
                break;
            }
            ticket -= w;
        }
        self.used.push(chosen);
        self.render(rng, cast, chosen)
    }

    fn render<R: Rng + ?Sized>(&mut self, rng: &mut R, cast: &Cast, e: Episode) -> Vec<String> {
        let item = pick(rng, ITEMS);
        let animal = pick(rng, ANIMALS);
        let aadj = pick(rng, ANIMAL_ADJS);
        let aact = pick(rng, ANIMAL_ACTS);
        let game = pick(rng, GAMES);
        // Wrong places run out after a few searches; then the search is a general one.
        let spot = self.wrong_spots.pop();
        let extra = [
            ("spot", spot.unwrap_or("all around")),
            ("item", item),
            ("animal", animal),
            ("aadj", aadj),
            ("aact", aact),
            ("game", game),
        ];
        let variant = rng.random_range(0..4usize);
        let lines: Vec<&str> = match e {
            Episode::Search => match (spot.is_some(), variant) {
                (false, _) => vec![
                    "{H} looked everywhere again.",
                    "{S} still could not find it.",
                ],
                (true, 0) => vec!["{H} looked {spot}.", "{S} only found {item}."],
                (true, 1) => vec!["{H} looked {spot}, but {s} only found {item}."],
                (true, 2) => vec!["{H} ran to look {spot}.", "There was only {item}."],
                (true, _) => vec![
                    "{H} went to look {spot}.",
                    "{S} looked and looked.",
                    "But the {noun} was not there.",
                ],
            },
            Episode::Sad => match variant {
                0 => vec![
                    "{H} sat down on the ground.",
                    "{S} missed {P} {noun} so much.",
                ],
                1 => vec!["A big tear rolled down {H}'s cheek."],
                _ => vec!["{H} felt like crying.", "{S} wanted {P} {noun} back."],
            },
            Episode::Weather => match variant {
                0 => vec!["Then the wind began to blow."],
                1 => vec![
                    "The sun started to go down.",
                    "{H} did not want to go home without {P} {noun}.",
                ],
                2 => vec![
                    "Soon, dark clouds came and it began to rain.",
                    "{H} did not stop looking.",
                ],
                _ => vec!["It was getting late."],
            },
            Episode::Animal => match variant {
                0 | 1 => vec![
                    "A {aadj} {animal} came by.",
                    "{H} asked the {animal}, \"Have you seen my {noun}?\"",
                    "The {animal} did not know.",
                ],
                2 => vec![
                    "{H} saw a {aadj} {animal}.",
                    "The {animal} wanted to play, but {H} was too busy looking.",
                ],
                _ => vec![
                    "A {aadj} {animal} {aact}.",
                    "{H} smiled at the {animal}, but {s} was still sad.",
                ],
            },
            Episode::Think => match variant {
                0 => vec!["{H} tried to think where {s} had played."],
                1 => vec!["{H} said, \"I will not give up!\""],
                2 => vec!["{H} was brave and kept looking."],
                _ => vec![
                    "{H} stopped and thought for a moment.",
                    "Where could it be?",
                ],
            },
            Episode::Ask => {
                let answer = match variant {
                    0 | 1 => "{G} said, \"Yes, I will help you!\"",
                    2 => "{G} said, \"Do not worry. We will find it together.\"",
                    _ => "{G} nodded and said, \"Let us look together.\"",
                };
                vec!["{H} asked {G}, \"Can you help me find my {noun}?\"", answer]
            }
            Episode::HelperSearch => match (spot.is_some(), variant) {
                (false, _) => vec!["{G} looked all around too.", "{GS} did not see it."],
                (true, 0 | 1) => vec!["{G} looked {spot}.", "{GS} did not see the {noun} there."],
                (true, 2) => vec!["{G} looked {spot}.", "{GS} only found {item}."],
                (true, _) => vec!["{G} looked {spot}.", "{GS} said, \"It is not here.\""],
            },
            Episode::Hug => match variant {
                0 | 1 => vec!["{G} gave {H} a big hug.", "{G} said, \"Do not be sad.\""],
                _ => vec!["{G} held {H}'s hand."],
            },
            Episode::PlayInstead => vec![
                "{G} wanted to play {game}.",
                "{G} said, \"Come and play with me, {H}!\"",
                "{H} played with {G} for a little while.",
                "But {s} still missed {P} {noun}.",
            ],
            Episode::Show => match variant {
                0 | 1 => vec![
                    "{G} showed {H} {GP} {gobj}.",
                    "{H} liked it, but {s} wanted {P} own {noun}.",
                ],
                _ => vec![
                    "{G} showed {H} {GP} {gobj}.",
                    "It was nice, but it was not {H}'s {noun}.",
                ],
            },
            Episode::Offer => vec![
                "{G} said, \"You can play with my {gnoun} instead.\"",
                "{H} said, \"Thank you, but I want my {noun}.\"",
            ],
            Episode::RunOff => vec!["{G} got bored and ran off to play with {GP} {gobj}."],
        };
        // A search that used no spot gives it back for later episodes or the hint.
        if let (Some(s), false) = (spot, lines.iter().any(|l| l.contains("{spot}"))) {
            self.wrong_spots.push(s);
        }
        lines.iter().map(|l| cast.fill(l, &extra)).collect()
    }
}

/// Generate one story from `rng`. Deterministic in the state of `rng`.
///
/// A draw whose fixed parts alone overrun [`MAX_WORDS`] is rejected and drawn again from the
/// same generator, so every story fits a 128-token context.
pub fn generate_story<R: rand::Rng>(rng: &mut R) -> SynthStory {
    loop {
        let story = draw_story(rng);
        if story.text.split_whitespace().count() <= MAX_WORDS {
            return story;
        }
    }
}

fn draw_story<R: rand::Rng>(rng: &mut R) -> SynthStory {
    let gender = if rng.random_bool(0.5) {
        Gender::Female
    } else {
        Gender::Male
    };
    let noun = pick(rng, OBJECT_NOUNS);
    let other_nouns: Vec<&'static str> = OBJECT_NOUNS
        .iter()
        .copied()
        .filter(|n| *n != noun)
        .collect();
    let setting = &SETTINGS[rng.random_range(0..SETTINGS.len())];
    let cast = Cast {
        hero: pick(rng, gender.names()),
        gender,
        helper: pick(rng, gender.other().names()),
        adj: pick(rng, OBJECT_ADJS),
        noun,
        helper_adj: pick(rng, OBJECT_ADJS),
        helper_noun: pick(rng, &other_nouns),
        setting,
        role: if rng.random_bool(0.55) {
            Role::Helps
        } else {
            Role::Distracts
        },
    };
    let mut spots = setting.spots.to_vec();
    spots.shuffle(rng);
    // The first shuffled spot is where the object is; the others are searched in vain.
    let found_spot = spots[0];
    let fill = |t: &str| cast.fill(t, &[]);

    // Opening paragraph: the hero, some setup, maybe the object and the helper.
    let mut opening = vec![cast.fill(pick(rng, INTROS), &[("hadj", pick(rng, HERO_ADJS))])];
    let n_setup = rng.random_range(0..=1);
    for t in pick_distinct(rng, SETUPS, n_setup) {
        let extra = [
            ("age", pick(rng, AGES)),
            ("home", pick(rng, HOMES)),
            ("hobby", pick(rng, HOBBIES)),
        ];
        opening.push(cast.fill(t, &extra));
    }
    if rng.random_bool(0.4) {
        let (t, follow) = pick(rng, OBJECT_INTROS);
        opening.push(fill(t));
        if follow && rng.random_bool(0.25) {
            opening.push(fill(pick(rng, OBJECT_FOLLOWS)));
        }
    }
    let helper_early = rng.random_bool(0.6);
    if helper_early {
        opening.push(fill(pick(rng, HELPER_EARLY)));
        if rng.random_bool(0.1) {
            opening.push(fill(pick(rng, HELPER_EARLY_FOLLOWS)));
        }
    }

    // The trip and the loss.
    let mut loss = vec![cast.fill(pick(rng, TRIPS), &[("day", pick(rng, DAYS))])];
    if rng.random_bool(0.2) {
        loss.push(fill(pick(rng, WEATHERS)));
    }
    if rng.random_bool(0.1) {
        loss.push(fill(pick(rng, PLAYS)));
    }
    if rng.random_bool(0.2) {
        loss.push("Oh no!".to_string());
        loss.push(fill("{H} lost {P} {obj}."));
    } else {
        let prefix = pick(rng, LOSS_PREFIXES);
        loss.push(cast.fill("{prefix} {H} lost {P} {obj}.", &[("prefix", prefix)]));
    }
    let n_reactions = 1;
    for t in pick_distinct(rng, REACTIONS, n_reactions) {
        loss.push(fill(t));
    }
    if !helper_early {
        loss.push(fill(pick(rng, HELPER_LATE)));
        if rng.random_bool(0.5) {
            let follows = match cast.role {
                Role::Helps => HELPER_LATE_FOLLOWS_HELPS,
                Role::Distracts => HELPER_LATE_FOLLOWS_DISTRACTS,
            };
            loss.push(fill(pick(rng, follows)));
        }
    }

    // The ending: maybe a hint, the find (always by the hero, by name), joy, a coda.
    let mut ending = Vec::new();
    let spot_extra = [("spot", found_spot)];
    if cast.role == Role::Helps && rng.random_bool(0.6) {
        ending.push(cast.fill(pick(rng, HINTS), &spot_extra));
        if rng.random_bool(0.5) {
            ending.push(fill("{H} ran to look."));
        }
    } else if rng.random_bool(0.5) {
        ending.push(cast.fill(pick(rng, SOLO_HINTS), &spot_extra));
    }
    ending.push(cast.fill(
        "{prefix} {H} found {P} {obj} {spot}.",
        &[("prefix", pick(rng, FOUND_PREFIXES)), ("spot", found_spot)],
    ));
    ending.push(fill(pick(rng, JOYS)));
    let mut codas: Vec<&str> = CODAS_ANY.to_vec();
    codas.extend_from_slice(match cast.role {
        Role::Helps => CODAS_HELPS,
        Role::Distracts => CODAS_DISTRACTS,
    });
    let n_codas = rng.random_range(0..=1);
    for t in pick_distinct(rng, &codas, n_codas) {
        ending.push(fill(t));
    }

    // Middle episodes: a random number, then more or fewer to land in the word range.
    let mut middle = Middle {
        used: Vec::new(),
        wrong_spots: spots[1..].to_vec(),
    };
    let fixed = words(&opening) + words(&loss) + words(&ending);
    let mut episodes: Vec<Vec<String>> = Vec::new();
    let target = rng.random_range(0..=1);
    for _ in 0..target {
        episodes.push(middle.next(rng, &cast));
    }
    let total = |eps: &[Vec<String>]| fixed + eps.iter().map(|e| words(e)).sum::<usize>();
    // Bounded: every episode adds words, and short stories need only a few more.
    let mut tries = 0;
    while total(&episodes) < MIN_WORDS && tries < 16 {
        episodes.push(middle.next(rng, &cast));
        tries += 1;
    }
    while total(&episodes) > MAX_WORDS && !episodes.is_empty() {
        episodes.pop();
    }

    // Paragraphs: opening | trip and loss (+ episodes that run on) | ... | ending.
    let mut paragraphs = vec![opening, loss];
    for episode in episodes {
        if rng.random_bool(0.5) {
            paragraphs.push(episode);
        } else if let Some(last) = paragraphs.last_mut() {
            last.extend(episode);
        }
    }
    paragraphs.push(ending);
    let text = paragraphs
        .iter()
        .map(|p| p.join(" "))
        .collect::<Vec<_>>()
        .join("\n\n");

    SynthStory {
        text,
        hero: cast.hero.to_string(),
        hero_gender: gender,
        helper: cast.helper.to_string(),
        object: cast.object(),
    }
}

/// The generator for story `index` of the corpus with `seed`: ChaCha8 keyed by `seed` (and a
/// fixed tag), on stream `index`, so each story is independent of every other and of order.
pub fn story_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..24].copy_from_slice(b"lmtrain.synth.v1");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(index);
    rng
}

/// Story `index` of the corpus with `seed`.
pub fn story_at(seed: u64, index: u64) -> SynthStory {
    generate_story(&mut story_rng(seed, index))
}

/// How many of `stories` go to validation: 5%, at least 1.
pub fn validation_count(stories: usize) -> usize {
    (stories / 20).max(1)
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("text", DataType::Utf8, false),
        Field::new("hero", DataType::Utf8, false),
        Field::new("hero_gender", DataType::Utf8, false),
        Field::new("helper", DataType::Utf8, false),
        Field::new("object", DataType::Utf8, false),
    ]))
}

/// Write stories `first .. first + count` to `path` through `<path>.tmp` and a rename.
fn write_split(path: &Path, seed: u64, first: usize, count: usize) -> anyhow::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let result = write_parquet(&tmp, seed, first, count).and_then(|()| {
        fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    });
    if result.is_err() {
        // Best effort: do not leave a half-written file behind; the original error matters more.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_parquet(tmp: &Path, seed: u64, first: usize, count: usize) -> anyhow::Result<()> {
    let file = fs::File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_size(ROW_GROUP_ROWS)
        .build();
    let schema = schema();
    let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))
        .with_context(|| format!("starting parquet writer for {}", tmp.display()))?;
    let mut start = first;
    let end = first + count;
    while start < end {
        let stop = (start + ROW_GROUP_ROWS).min(end);
        let stories: Vec<SynthStory> = (start..stop).map(|i| story_at(seed, i as u64)).collect();
        let column = |f: &dyn Fn(&SynthStory) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(stories.iter().map(f)))
        };
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                column(&|s| s.text.as_str()),
                column(&|s| s.hero.as_str()),
                column(&|s| s.hero_gender.as_str()),
                column(&|s| s.helper.as_str()),
                column(&|s| s.object.as_str()),
            ],
        )
        .with_context(|| format!("building a record batch for {}", tmp.display()))?;
        writer
            .write(&batch)
            .with_context(|| format!("writing rows {start}..{stop} to {}", tmp.display()))?;
        start = stop;
    }
    // into_inner writes the footer and hands back the file, so it can be synced before rename.
    let file = writer
        .into_inner()
        .with_context(|| format!("finishing {}", tmp.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    Ok(())
}

/// Writes `<out>/train-00000-of-00001.parquet` and `<out>/validation-00000-of-00001.parquet`
/// (validation = 5% of `stories`, at least 1), creating `out` if needed. Deterministic: the same
/// (stories, seed) gives byte-identical files. Story i is generated from a ChaCha8Rng seeded from
/// (seed, i) so generation does not depend on order.
///
/// Stories `0 .. train` go to train and the last `validation` stories to validation. Columns:
/// `text`, `hero`, `hero_gender` (`"female"`/`"male"`), `helper`, `object`, all non-null UTF-8;
/// snappy-compressed row groups of at most [`ROW_GROUP_ROWS`] rows. Each file is written to
/// `<file>.tmp` and renamed into place. Needs `stories >= 2`, so both splits are non-empty.
pub fn write_corpus(out: &Path, stories: usize, seed: u64) -> anyhow::Result<CorpusSummary> {
    if stories < 2 {
        bail!("a synthetic corpus needs at least 2 stories (one for each split), got {stories}");
    }
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let validation_stories = validation_count(stories);
    let train_stories = stories - validation_stories;
    let train_path = out.join(TRAIN_FILE);
    let validation_path = out.join(VALIDATION_FILE);
    write_split(&train_path, seed, 0, train_stories)
        .with_context(|| format!("writing {}", train_path.display()))?;
    write_split(&validation_path, seed, train_stories, validation_stories)
        .with_context(|| format!("writing {}", validation_path.display()))?;
    Ok(CorpusSummary {
        train_path,
        validation_path,
        train_stories,
        validation_stories,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::collections::{BTreeMap, BTreeSet};

    /// What a checker recovers from a story's text alone.
    #[derive(Debug)]
    struct Parsed {
        hero: String,
        gender: Gender,
        lost: String,
        found: String,
        /// Words between the loss and the find.
        distance: usize,
    }

    /// Sentences: split after . ! ? (and a closing quote) followed by whitespace or the end.
    fn sentences(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        let mut current = String::new();
        let mut i = 0;
        while i < chars.len() {
            current.push(chars[i]);
            if matches!(chars[i], '.' | '!' | '?') {
                if chars.get(i + 1) == Some(&'"') {
                    current.push('"');
                    i += 1;
                }
                if chars.get(i + 1).is_none_or(|c| c.is_whitespace()) {
                    out.push(current.trim().to_string());
                    current.clear();
                }
            }
            i += 1;
        }
        if !current.trim().is_empty() {
            out.push(current.trim().to_string());
        }
        out
    }

    fn tokens(sentence: &str) -> Vec<&str> {
        sentence
            .split(|c: char| !c.is_ascii_alphabetic())
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// Check the three constraints from the text alone, with the module's name lists.
    fn check(text: &str) -> Result<Parsed, String> {
        let sents = sentences(text);
        let first = sents.first().ok_or("no sentences")?;
        // 1. The hero is named in the first sentence: "... a <adj> girl|boy named X."
        let toks = tokens(first);
        let at = toks
            .iter()
            .position(|t| *t == "named")
            .ok_or_else(|| format!("no 'named' in the first sentence: {first}"))?;
        let hero = toks.get(at + 1).ok_or("nothing after 'named'")?.to_string();
        let gender = match at.checked_sub(1).map(|j| toks[j]) {
            Some("girl") => Gender::Female,
            Some("boy") => Gender::Male,
            other => return Err(format!("no girl/boy before 'named': {other:?}")),
        };
        if gender_of_name(&hero) != Some(gender) {
            return Err(format!("{hero} is not a {gender:?} name"));
        }
        if !first.ends_with(&format!("named {hero}.")) {
            return Err(format!(
                "first sentence does not end with the name: {first}"
            ));
        }

        // 2. Pronouns: every pronoun agrees with its sentence's subject (see the module docs).
        let mut focus: Option<Gender> = None;
        for s in &sents {
            let toks = tokens(s);
            let first_ref = toks.iter().find_map(|t| {
                gender_of_name(t)
                    .map(|g| (g, true))
                    .or_else(|| Gender::of_pronoun(t).map(|g| (g, false)))
            });
            let Some((g, is_name)) = first_ref else {
                continue;
            };
            let subject = if is_name {
                g
            } else {
                let f = focus.ok_or_else(|| format!("pronoun with no antecedent: {s}"))?;
                if f != g {
                    return Err(format!("pronoun disagrees with the previous subject: {s}"));
                }
                f
            };
            for t in &toks {
                if let Some(pg) = Gender::of_pronoun(t) {
                    if pg != subject {
                        return Err(format!("pronoun '{t}' disagrees with the subject: {s}"));
                    }
                }
            }
            focus = Some(subject);
        }

        // 3. "X lost his/her A N." once; "X found his/her A N ..." once, later, same A N, X hero.
        let words: Vec<&str> = text.split_whitespace().collect();
        let bare = |w: &str| {
            w.trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_string()
        };
        let lost_at: Vec<usize> = (0..words.len())
            .filter(|&i| bare(words[i]) == "lost")
            .collect();
        let [li] = lost_at[..] else {
            return Err(format!("'lost' occurs {} times", lost_at.len()));
        };
        let poss = gender.possessive();
        let object_after = |i: usize, verb: &str| -> Result<String, String> {
            let get = |j: usize| words.get(j).map(|w| bare(w)).unwrap_or_default();
            if i == 0 || get(i - 1) != hero {
                return Err(format!("the subject of '{verb}' is not {hero}"));
            }
            if get(i + 1) != poss {
                return Err(format!("'{verb}' is not followed by '{poss}'"));
            }
            Ok(format!("{} {}", get(i + 2), get(i + 3)))
        };
        let lost = object_after(li, "lost")?;
        if !words.get(li + 3).is_some_and(|w| w.ends_with('.')) {
            return Err("the loss sentence does not end after the object".into());
        }
        let found_at: Vec<usize> = (0..words.len().saturating_sub(1))
            .filter(|&i| {
                bare(words[i]) == "found" && matches!(bare(words[i + 1]).as_str(), "his" | "her")
            })
            .collect();
        let [fi] = found_at[..] else {
            return Err(format!("'found his/her' occurs {} times", found_at.len()));
        };
        if fi <= li {
            return Err("found before lost".into());
        }
        let found = object_after(fi, "found")?;
        if lost != found {
            return Err(format!("lost {lost} but found {found}"));
        }
        Ok(Parsed {
            hero,
            gender,
            lost,
            found,
            distance: fi - li,
        })
    }

    #[test]
    fn same_seed_same_story_different_seed_different() {
        for i in 0..50 {
            assert_eq!(story_at(7, i), story_at(7, i));
            let mut rng = story_rng(7, i);
            assert_eq!(generate_story(&mut rng), story_at(7, i));
        }
        let differ_seed = (0..50)
            .filter(|&i| story_at(7, i).text != story_at(8, i).text)
            .count();
        assert!(
            differ_seed >= 49,
            "only {differ_seed}/50 differ across seeds"
        );
        let differ_index = (0..50)
            .filter(|&i| story_at(7, i).text != story_at(7, i + 1).text)
            .count();
        assert!(
            differ_index >= 49,
            "only {differ_index}/50 differ across indices"
        );
        // Order independence: generating out of order gives the same stories.
        let forward: Vec<_> = (0..20).map(|i| story_at(3, i)).collect();
        let backward: Vec<_> = (0..20).rev().map(|i| story_at(3, i)).collect();
        assert!(forward.iter().eq(backward.iter().rev()));
    }

    #[test]
    fn every_story_satisfies_the_constraints_from_its_text() {
        for i in 0..5000 {
            let story = story_at(11, i);
            let parsed = check(&story.text)
                .unwrap_or_else(|e| panic!("story {i}: {e}\n---\n{}", story.text));
            assert_eq!(parsed.hero, story.hero);
            assert_eq!(parsed.gender, story.hero_gender);
            assert_eq!(parsed.lost, story.object);
            assert_eq!(parsed.found, story.object);
            assert_eq!(
                gender_of_name(&story.helper),
                Some(story.hero_gender.other())
            );
            assert!(
                story.text.contains(&story.helper),
                "story {i}: helper absent"
            );
            let n = story.text.split_whitespace().count();
            assert!(
                (MIN_WORDS..=MAX_WORDS).contains(&n),
                "story {i} has {n} words:\n{}",
                story.text
            );
            assert!(
                !story.text.contains(['{', '}']),
                "story {i} has an unfilled placeholder:\n{}",
                story.text
            );
            assert!(story.text.is_ascii());
            // Names in the text are only ever the two characters.
            for t in tokens(&story.text) {
                if gender_of_name(t).is_some() {
                    assert!(
                        t == story.hero || t == story.helper,
                        "story {i}: stray name {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_checker_rejects_broken_stories() {
        let story = story_at(5, 0);
        assert!(check(&story.text).is_ok());
        let (name, gender) = (story.hero.as_str(), story.hero_gender);
        // Another object found.
        let swapped = story.text.replace(
            &format!("found {} {}", gender.possessive(), story.object),
            &format!("found {} zz ball", gender.possessive()),
        );
        assert!(check(&swapped).is_err());
        // The wrong character finds it.
        let wrong_finder = story
            .text
            .replace(&format!("{name} found"), &format!("{} found", story.helper));
        assert!(check(&wrong_finder).is_err());
        // A pronoun of the wrong gender.
        let bad = format!(
            "{} {} was tired.",
            story.text,
            capitalise(gender.other().subject())
        );
        assert!(check(&bad).is_err());
        // Names and pronouns never collide with other words.
        for name in GIRL_NAMES.iter().chain(BOY_NAMES) {
            assert!(Gender::of_pronoun(name).is_none());
            assert!(!GIRL_NAMES.contains(name) || !BOY_NAMES.contains(name));
        }
    }

    #[test]
    fn stories_vary() {
        let stories: Vec<SynthStory> = (0..1000).map(|i| story_at(21, i)).collect();
        let heroes: BTreeSet<_> = stories.iter().map(|s| s.hero.as_str()).collect();
        let helpers: BTreeSet<_> = stories.iter().map(|s| s.helper.as_str()).collect();
        let objects: BTreeSet<_> = stories.iter().map(|s| s.object.as_str()).collect();
        let texts: BTreeSet<_> = stories.iter().map(|s| s.text.as_str()).collect();
        let openings: BTreeSet<_> = stories
            .iter()
            .filter_map(|s| s.text.split(". ").next())
            .collect();
        let mut distances = BTreeMap::new();
        let mut lengths = BTreeSet::new();
        let mut female = 0;
        for s in &stories {
            let p = check(&s.text).expect("constraints hold");
            *distances.entry(p.distance).or_insert(0) += 1;
            lengths.insert(s.text.split_whitespace().count());
            female += usize::from(s.hero_gender == Gender::Female);
        }
        // The closed cast and object lists are small on purpose (a small model must learn the
        // constraints in minutes); every name and nearly every adjective-noun pair must occur.
        let names = GIRL_NAMES.len() + BOY_NAMES.len();
        assert_eq!(heroes.len(), names, "{} heroes", heroes.len());
        assert_eq!(helpers.len(), names, "{} helpers", helpers.len());
        let pairs = OBJECT_ADJS.len() * OBJECT_NOUNS.len();
        assert!(
            objects.len() * 10 >= pairs * 9,
            "{} objects of {pairs}",
            objects.len()
        );
        assert_eq!(texts.len(), 1000, "duplicate stories");
        assert!(openings.len() >= 300, "{} openings", openings.len());
        assert!(
            distances.len() >= 25,
            "{} lost-found distances",
            distances.len()
        );
        let (lo, hi) = (
            distances.keys().next().copied().unwrap_or(0),
            distances.keys().last().copied().unwrap_or(0),
        );
        assert!(lo < 15 && hi > 35, "lost-found distances span {lo}..{hi}");
        assert!(lengths.len() >= 20, "{} distinct lengths", lengths.len());
        assert!((400..=600).contains(&female), "{female} girls of 1000");
    }

    fn read_column(path: &Path, name: &str) -> Vec<String> {
        let file = fs::File::open(path).expect("open parquet");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet metadata")
            .build()
            .expect("reader");
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.expect("batch");
            let col = batch
                .column_by_name(name)
                .unwrap_or_else(|| panic!("no column {name}"))
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("utf8 column");
            assert_eq!(col.null_count(), 0);
            out.extend(col.iter().map(|v| v.expect("non-null").to_string()));
        }
        out
    }

    #[test]
    fn write_corpus_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("nested").join("synth");
        let summary = write_corpus(&out, 2200, 3).expect("write corpus");
        assert_eq!(summary.validation_stories, 110);
        assert_eq!(summary.train_stories, 2090);
        assert_eq!(summary.train_path, out.join(TRAIN_FILE));
        assert_eq!(summary.validation_path, out.join(VALIDATION_FILE));

        let train = read_column(&summary.train_path, "text");
        let validation = read_column(&summary.validation_path, "text");
        assert_eq!(train.len(), 2090);
        assert_eq!(validation.len(), 110);
        for (i, text) in train.iter().chain(&validation).enumerate() {
            assert_eq!(*text, story_at(3, i as u64).text, "story {i}");
        }
        let genders = read_column(&summary.validation_path, "hero_gender");
        let heroes = read_column(&summary.validation_path, "hero");
        let objects = read_column(&summary.validation_path, "object");
        let helpers = read_column(&summary.validation_path, "helper");
        for j in 0..110 {
            let s = story_at(3, 2090 + j as u64);
            assert_eq!(genders[j], s.hero_gender.as_str());
            assert_eq!(heroes[j], s.hero);
            assert_eq!(objects[j], s.object);
            assert_eq!(helpers[j], s.helper);
        }

        // Row groups of at most 1024 rows, snappy, non-null text column first.
        let file = fs::File::open(&summary.train_path).expect("open");
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("metadata");
        let meta = builder.metadata();
        let sizes: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(sizes, vec![1024, 1024, 42]);
        for g in meta.row_groups() {
            for c in g.columns() {
                assert_eq!(c.compression(), Compression::SNAPPY);
            }
        }
        let schema = builder.schema();
        assert_eq!(schema.field(0).name(), "text");
        assert!(!schema.field(0).is_nullable());
        assert_eq!(schema.fields().len(), 5);

        // No temporary files are left behind.
        let names: BTreeSet<String> = fs::read_dir(&out)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        let expected: BTreeSet<String> = [TRAIN_FILE, VALIDATION_FILE].map(String::from).into();
        assert_eq!(names, expected);
    }

    #[test]
    fn write_corpus_is_byte_identical_and_seed_dependent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        write_corpus(&a, 300, 9).expect("a");
        write_corpus(&b, 300, 9).expect("b");
        write_corpus(&c, 300, 10).expect("c");
        for name in [TRAIN_FILE, VALIDATION_FILE] {
            let bytes = |d: &Path| fs::read(d.join(name)).expect("read");
            assert_eq!(bytes(&a), bytes(&b), "{name} differs for the same seed");
            assert_ne!(bytes(&a), bytes(&c), "{name} equal for different seeds");
        }
        // Overwriting an existing corpus works and gives the same bytes.
        write_corpus(&a, 300, 9).expect("rewrite");
        assert_eq!(
            fs::read(a.join(TRAIN_FILE)).expect("read"),
            fs::read(b.join(TRAIN_FILE)).expect("read")
        );
    }

    #[test]
    fn write_corpus_small_and_invalid_sizes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = write_corpus(dir.path(), 2, 1).expect("two stories");
        assert_eq!((s.train_stories, s.validation_stories), (1, 1));
        let s = write_corpus(dir.path(), 39, 1).expect("39 stories");
        assert_eq!((s.train_stories, s.validation_stories), (38, 1));
        let s = write_corpus(dir.path(), 40, 1).expect("40 stories");
        assert_eq!((s.train_stories, s.validation_stories), (38, 2));
        assert!(write_corpus(dir.path(), 1, 1).is_err());
        assert!(write_corpus(dir.path(), 0, 1).is_err());
        // An output path that is a file fails with the path in the message.
        let blocker = dir.path().join("blocker");
        fs::write(&blocker, b"x").expect("write");
        let err = write_corpus(&blocker, 10, 1).expect_err("out is a file");
        assert!(format!("{err:#}").contains("blocker"), "{err:#}");
    }
}

//! Validity checker for stories in the style of the synthetic corpus ([`crate::data::synth`]),
//! meant for model generations (prompt + continuation), which may be ungrammatical.
//!
//! # What is checked
//!
//! The text is cut at the first `<|endoftext|>` (what follows is another story), then split into
//! sentences after `.`, `!` or `?` (and any closing quotes) followed by whitespace or the end. A
//! trailing piece without that punctuation is an unfinished sentence (the generation ran out of
//! tokens) and is ignored. Words are maximal runs of letters, so `Lily's` holds the name `Lily`.
//!
//! 1. **Hero.** The first sentence must contain `named <Name>` (a capitalised word). The hero's
//!    gender comes from the corpus's name lists, else from `girl`/`boy` just before `named`;
//!    if both exist and disagree, that is a [`Reason::PronounMismatch`] with the girl/boy word as
//!    the "pronoun". No such introduction is [`Reason::NoHero`].
//! 2. **Loss.** The first `lost his|her <object>` is the loss. Its actor must be the hero
//!    ([`Reason::WrongCharacterLoses`]). Other uses of `lost`, and later losses, are ignored.
//! 3. **Find.** Every `found his|her <object>` after the loss must have the hero as actor
//!    ([`Reason::WrongCharacterAtEnd`]) and the lost object ([`Reason::ObjectMismatch`]).
//!    `found a small rock` and the like are not finds; a `found his|her` before the loss is
//!    ignored.
//! 4. **Pronouns**, the corpus convention (see [`crate::data::synth`]): a sentence's subject is
//!    its first character reference (a character name, or he/him/his/himself/she/her/hers/herself);
//!    a sentence whose first reference is a pronoun continues the subject of the last sentence
//!    that referred to anyone; every such pronoun in a sentence must have its subject's gender
//!    ([`Reason::PronounMismatch`], naming the subject). Every training story obeys this, so a
//!    generation that breaks it has not learnt the rule, even where loose English would allow
//!    it (`Lily gave Tom his hat.` counts as a mismatch).
//!
//! The **actor** of `lost`/`found` is the nearest character reference before it in its sentence:
//! a name is that character; a pronoun of the hero's gender is the hero (whether it was used
//! correctly is the pronoun check's business); a pronoun of the other gender is the last-named
//! character of that gender (or the pronoun itself if none was named). With no reference before
//! the verb, the actor is the sentence's subject.
//!
//! An **object** is the words after `his|her`: at most [`MAX_OBJECT_WORDS`], stopping before a
//! preposition or conjunction (`under`, `behind`, `and`, ... see [`PHRASE_STOPS`]) and after a word
//! followed by punctuation, lower-cased. The corpus's objects are one adjective and one noun
//! (`red ball`), and lost and found objects must match word for word (`ball` ≠ `red ball`).
//!
//! # Verdicts
//!
//! Sentences are read in order, and the first violation found is the verdict's reason (within a
//! sentence: the actor, then the object, then the pronouns — so `Tom found her red ball.` in
//! Lily's story is a wrong character, not a pronoun slip). If the text breaks nothing but stops
//! before the loss or before the find, it is [`Reason::Incomplete`]: **invalid** for the validity
//! rate (a story that never resolves has not shown the long-range constraint), but counted under
//! its own reason so a report can tell early stops from real violations.

use std::collections::BTreeMap;
use std::fmt;

use crate::data::synth::{gender_of_name, Gender};

/// The document separator; text after it belongs to the next story and is not checked.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// Most words taken as an object after `his|her` (the corpus uses two: adjective and noun).
pub const MAX_OBJECT_WORDS: usize = 3;

/// Words that end an object phrase (not included in it): the prepositions the corpus's places
/// start with, and common continuations in model text.
pub const PHRASE_STOPS: &[&str] = &[
    "under", "behind", "in", "inside", "near", "next", "by", "beside", "at", "on", "into", "from",
    "with", "to", "for", "of", "and", "but", "or", "so", "that", "which", "again", "there", "here",
    "too", "then", "when", "while", "because", "back", "all",
];

/// Whether a story satisfies the corpus's constraints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoryVerdict {
    Valid,
    Invalid(Reason),
}

/// Why a story is invalid: the first violation in reading order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The first sentence introduces no one as `named <Name>`.
    NoHero,
    /// Someone other than the hero loses the object (`Tom lost his red ball.` in Lily's story).
    WrongCharacterLoses { expected: String, found: String },
    /// Someone other than the hero finds an object with `found his|her` after the loss.
    WrongCharacterAtEnd { expected: String, found: String },
    /// A pronoun (or the introduction's girl/boy) whose gender is not that of `name`, the
    /// sentence's subject.
    PronounMismatch { name: String, pronoun: String },
    /// The object found is not the object lost.
    ObjectMismatch { lost: String, found: String },
    /// Nothing was violated, but the text stops before this event.
    Incomplete(Missing),
}

/// The event an incomplete story never reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Missing {
    /// No `lost his|her ...`.
    Loss,
    /// A loss, but no `found his|her ...` after it.
    Find,
}

/// The variant of a [`Reason`] without its details, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReasonKind {
    NoHero,
    WrongCharacterLoses,
    WrongCharacterAtEnd,
    PronounMismatch,
    ObjectMismatch,
    Incomplete,
}

impl ReasonKind {
    pub const ALL: [ReasonKind; 6] = [
        ReasonKind::NoHero,
        ReasonKind::WrongCharacterLoses,
        ReasonKind::WrongCharacterAtEnd,
        ReasonKind::PronounMismatch,
        ReasonKind::ObjectMismatch,
        ReasonKind::Incomplete,
    ];

    /// snake_case name, for metric keys and report tables.
    pub fn label(self) -> &'static str {
        match self {
            ReasonKind::NoHero => "no_hero",
            ReasonKind::WrongCharacterLoses => "wrong_character_loses",
            ReasonKind::WrongCharacterAtEnd => "wrong_character_at_end",
            ReasonKind::PronounMismatch => "pronoun_mismatch",
            ReasonKind::ObjectMismatch => "object_mismatch",
            ReasonKind::Incomplete => "incomplete",
        }
    }
}

impl Reason {
    pub fn kind(&self) -> ReasonKind {
        match self {
            Reason::NoHero => ReasonKind::NoHero,
            Reason::WrongCharacterLoses { .. } => ReasonKind::WrongCharacterLoses,
            Reason::WrongCharacterAtEnd { .. } => ReasonKind::WrongCharacterAtEnd,
            Reason::PronounMismatch { .. } => ReasonKind::PronounMismatch,
            Reason::ObjectMismatch { .. } => ReasonKind::ObjectMismatch,
            Reason::Incomplete(_) => ReasonKind::Incomplete,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoHero => write!(
                f,
                "no hero introduced as 'named <Name>' in the first sentence"
            ),
            Reason::WrongCharacterLoses { expected, found } => {
                write!(f, "{found} loses the object, not the hero {expected}")
            }
            Reason::WrongCharacterAtEnd { expected, found } => {
                write!(f, "{found} finds the object, not the hero {expected}")
            }
            Reason::PronounMismatch { name, pronoun } => {
                write!(f, "'{pronoun}' does not agree with {name}")
            }
            Reason::ObjectMismatch { lost, found } => {
                write!(f, "lost '{lost}' but found '{found}'")
            }
            Reason::Incomplete(Missing::Loss) => write!(f, "incomplete: nothing is lost"),
            Reason::Incomplete(Missing::Find) => {
                write!(f, "incomplete: the lost object is never found")
            }
        }
    }
}

/// Valid fraction and invalid counts by reason over a set of verdicts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidityRate {
    pub total: usize,
    pub valid: usize,
    /// Every [`ReasonKind`], zero counts included.
    pub by_reason: BTreeMap<ReasonKind, usize>,
}

impl ValidityRate {
    /// valid / total (incomplete stories count as invalid); `None` for no verdicts.
    pub fn valid_fraction(&self) -> Option<f64> {
        (self.total > 0).then(|| self.valid as f64 / self.total as f64)
    }
}

/// Count `verdicts`.
pub fn validity_rate<'a>(verdicts: impl IntoIterator<Item = &'a StoryVerdict>) -> ValidityRate {
    let mut rate = ValidityRate {
        total: 0,
        valid: 0,
        by_reason: ReasonKind::ALL.iter().map(|&k| (k, 0)).collect(),
    };
    for verdict in verdicts {
        rate.total += 1;
        match verdict {
            StoryVerdict::Valid => rate.valid += 1,
            StoryVerdict::Invalid(reason) => {
                *rate.by_reason.entry(reason.kind()).or_insert(0) += 1;
            }
        }
    }
    rate
}

/// Check one story (the prompt followed by the model's continuation, as one decoded string).
pub fn check_story(prompt_plus_generation: &str) -> StoryVerdict {
    match check(prompt_plus_generation) {
        Ok(()) => StoryVerdict::Valid,
        Err(reason) => StoryVerdict::Invalid(reason),
    }
}

fn check(text: &str) -> Result<(), Reason> {
    let text = text.split(END_OF_TEXT).next().unwrap_or_default();
    let sentences: Vec<Vec<Word>> = complete_sentences(text).into_iter().map(words).collect();
    let hero = sentences
        .first()
        .map_or(Err(Reason::NoHero), |s| introduce_hero(s))?;
    let mut story = StoryState::new(hero);
    for sentence in &sentences {
        story.read(sentence)?;
    }
    match (&story.lost, story.found) {
        (None, _) => Err(Reason::Incomplete(Missing::Loss)),
        (Some(_), false) => Err(Reason::Incomplete(Missing::Find)),
        (Some(_), true) => Ok(()),
    }
}

/// A character as a sentence refers to it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Character {
    name: String,
    gender: Gender,
}

/// What has been read so far.
struct StoryState {
    hero: Character,
    /// The subject of the last sentence that referred to anyone.
    focus: Character,
    /// The most recently named character of each gender (female, male).
    last_named: [Option<String>; 2],
    /// The lost object, once lost.
    lost: Option<String>,
    /// Whether a correct find followed the loss.
    found: bool,
}

fn gender_slot(g: Gender) -> usize {
    match g {
        Gender::Female => 0,
        Gender::Male => 1,
    }
}

/// A character reference in a sentence.
#[derive(Clone, Copy)]
struct Reference<'a> {
    word: &'a str,
    gender: Gender,
    is_name: bool,
}

impl StoryState {
    fn new(hero: Character) -> StoryState {
        StoryState {
            focus: hero.clone(),
            hero,
            last_named: [None, None],
            lost: None,
            found: false,
        }
    }

    /// The character reference `word` makes, if any: the hero's name (whatever list it is on),
    /// a corpus name, or a third-person singular pronoun.
    fn reference<'a>(&self, word: &'a str) -> Option<Reference<'a>> {
        if word == self.hero.name {
            return Some(Reference {
                word,
                gender: self.hero.gender,
                is_name: true,
            });
        }
        if let Some(gender) = gender_of_name(word) {
            return Some(Reference {
                word,
                gender,
                is_name: true,
            });
        }
        Gender::of_pronoun(word).map(|gender| Reference {
            word,
            gender,
            is_name: false,
        })
    }

    fn read(&mut self, sentence: &[Word]) -> Result<(), Reason> {
        let refs: Vec<Option<Reference>> =
            sentence.iter().map(|w| self.reference(w.text)).collect();
        let Some(first) = refs.iter().flatten().next().copied() else {
            return Ok(()); // No character in this sentence: nothing to check or carry over.
        };
        let subject = if first.is_name {
            Character {
                name: first.word.to_string(),
                gender: first.gender,
            }
        } else {
            self.focus.clone()
        };

        for (at, pair) in sentence.windows(2).enumerate() {
            let verb = pair[0].text.to_ascii_lowercase();
            if !matches!(pair[1].text.to_ascii_lowercase().as_str(), "his" | "her") {
                continue;
            }
            let is_loss = verb == "lost" && self.lost.is_none();
            let is_find = verb == "found" && self.lost.is_some();
            if !(is_loss || is_find) {
                continue;
            }
            let actor = self.actor(&refs[..at], &subject);
            let object = object_phrase(sentence, at + 1);
            if actor != self.hero.name {
                let (expected, found) = (self.hero.name.clone(), actor);
                return Err(if is_loss {
                    Reason::WrongCharacterLoses { expected, found }
                } else {
                    Reason::WrongCharacterAtEnd { expected, found }
                });
            }
            match &self.lost {
                None => self.lost = Some(object),
                Some(lost) if *lost != object => {
                    return Err(Reason::ObjectMismatch {
                        lost: lost.clone(),
                        found: object,
                    })
                }
                Some(_) => self.found = true,
            }
        }

        for r in refs.iter().flatten().filter(|r| !r.is_name) {
            if r.gender != subject.gender {
                return Err(Reason::PronounMismatch {
                    name: subject.name,
                    pronoun: r.word.to_string(),
                });
            }
        }
        for r in refs.iter().flatten().filter(|r| r.is_name) {
            self.last_named[gender_slot(r.gender)] = Some(r.word.to_string());
        }
        self.focus = subject;
        Ok(())
    }

    /// Who performs a verb preceded by `before` (this sentence's references up to the verb):
    /// see the module docs.
    fn actor(&self, before: &[Option<Reference>], subject: &Character) -> String {
        let Some(nearest) = before.iter().rev().flatten().next() else {
            return subject.name.clone();
        };
        if nearest.is_name {
            return nearest.word.to_string();
        }
        if nearest.gender == self.hero.gender {
            return self.hero.name.clone();
        }
        // The last character of that gender named in this sentence before the verb, or earlier.
        before
            .iter()
            .rev()
            .flatten()
            .find(|r| r.is_name && r.gender == nearest.gender)
            .map(|r| r.word.to_string())
            .or_else(|| self.last_named[gender_slot(nearest.gender)].clone())
            .unwrap_or_else(|| nearest.word.to_ascii_lowercase())
    }
}

/// The hero from the first sentence's `... girl|boy named <Name>`.
fn introduce_hero(first: &[Word]) -> Result<Character, Reason> {
    let at = first
        .iter()
        .position(|w| w.text.eq_ignore_ascii_case("named"))
        .ok_or(Reason::NoHero)?;
    let name = first
        .get(at + 1)
        .map(|w| w.text)
        .filter(|n| n.chars().next().is_some_and(char::is_uppercase))
        .ok_or(Reason::NoHero)?;
    let kind = at.checked_sub(1).map(|i| first[i].text);
    let kind_gender = match kind.map(str::to_ascii_lowercase).as_deref() {
        Some("girl") => Some(Gender::Female),
        Some("boy") => Some(Gender::Male),
        _ => None,
    };
    let gender = match (gender_of_name(name), kind_gender) {
        (Some(by_name), Some(by_kind)) if by_name != by_kind => {
            return Err(Reason::PronounMismatch {
                name: name.to_string(),
                pronoun: kind.unwrap_or_default().to_string(),
            })
        }
        (Some(g), _) | (None, Some(g)) => g,
        (None, None) => return Err(Reason::NoHero),
    };
    Ok(Character {
        name: name.to_string(),
        gender,
    })
}

/// The object after the possessive at `possessive` (see the module docs).
fn object_phrase(sentence: &[Word], possessive: usize) -> String {
    let mut object: Vec<String> = Vec::new();
    if sentence
        .get(possessive)
        .is_some_and(|w| w.punctuation_after)
    {
        return String::new();
    }
    for w in sentence.iter().skip(possessive + 1).take(MAX_OBJECT_WORDS) {
        let lower = w.text.to_ascii_lowercase();
        if PHRASE_STOPS.contains(&lower.as_str()) {
            break;
        }
        object.push(lower);
        if w.punctuation_after {
            break;
        }
    }
    object.join(" ")
}

/// A word (maximal run of letters) and whether punctuation separates it from the next word.
#[derive(Clone, Copy, Debug)]
struct Word<'a> {
    text: &'a str,
    punctuation_after: bool,
}

fn words(sentence: &str) -> Vec<Word<'_>> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut start = None;
    for (i, c) in sentence.char_indices() {
        match (c.is_alphabetic(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, sentence.len()));
    }
    spans
        .iter()
        .enumerate()
        .map(|(k, &(s, e))| {
            let gap_end = spans.get(k + 1).map_or(sentence.len(), |next| next.0);
            let gap = &sentence[e..gap_end];
            Word {
                text: &sentence[s..e],
                punctuation_after: gap_end == sentence.len()
                    || gap.contains(|c: char| ",.;:!?\"()".contains(c)),
            }
        })
        .collect()
}

/// Sentences ending in `.`, `!` or `?` (plus closing quotes) before whitespace or the end; an
/// unfinished trailing piece is dropped.
fn complete_sentences(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !matches!(bytes[i], b'.' | b'!' | b'?') {
            i += 1;
            continue;
        }
        let mut end = i + 1;
        while end < bytes.len() && bytes[end] == b'"' {
            end += 1;
        }
        // All positions here follow ASCII bytes, so slicing stays on character boundaries.
        if end == bytes.len() || bytes[end].is_ascii_whitespace() {
            let sentence = text[start..end].trim();
            if !sentence.is_empty() {
                out.push(sentence);
            }
            start = end;
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth::story_at;

    fn invalid(text: &str) -> Reason {
        match check_story(text) {
            StoryVerdict::Invalid(reason) => reason,
            StoryVerdict::Valid => panic!("expected invalid, got valid:\n{text}"),
        }
    }

    fn assert_valid(text: &str) {
        assert_eq!(check_story(text), StoryVerdict::Valid, "{text}");
    }

    fn wrong_end(expected: &str, found: &str) -> Reason {
        Reason::WrongCharacterAtEnd {
            expected: expected.into(),
            found: found.into(),
        }
    }

    fn pronoun(name: &str, pronoun: &str) -> Reason {
        Reason::PronounMismatch {
            name: name.into(),
            pronoun: pronoun.into(),
        }
    }

    fn object(lost: &str, found: &str) -> Reason {
        Reason::ObjectMismatch {
            lost: lost.into(),
            found: found.into(),
        }
    }

    /// A hand-written story in the corpus style, girl hero and boy helper.
    const LILY: &str = "Once upon a time, there was a little girl named Lily. She loved to \
        sing songs. Lily had a red ball. She took it everywhere.\n\nOne sunny day, Lily went to \
        the park with her ball. Suddenly, Lily lost her red ball. She began to cry. Just then, a \
        boy named Tom came by. Tom saw that Lily was sad.\n\nLily looked under the slide. She \
        only found a small rock. Tom showed Lily his blue car. Lily liked it, but she wanted her \
        own ball.\n\nTom said, \"Look behind the big tree!\" At last, Lily found her red ball \
        behind the big tree. She was so happy! Lily said, \"Thank you, Tom!\"";

    /// Boy hero, girl helper, "Oh no!" loss, a helper search with her own pronoun.
    const BEN: &str = "There once was a brave boy named Ben. Ben had a good friend named Mia. \
        They played together every day.\n\nAfter lunch, Ben and his kite went to the beach. Oh \
        no! Ben lost his striped kite. He felt very sad. He said, \"Where is my kite?\"\n\nBen \
        asked Mia, \"Can you help me find my kite?\" Mia said, \"Yes, I will help you!\" Mia \
        looked near the big rocks. She did not see the kite there.\n\nFinally, Ben found his \
        striped kite in the sand. He hugged his kite tight. Ben gave Mia a big hug.";

    #[test]
    fn hand_written_valid_stories() {
        assert_valid(LILY);
        assert_valid(BEN);
        // What follows end-of-text is another story and is not checked.
        assert_valid(&format!(
            "{LILY}<|endoftext|>There was a boy named Tom. Tom found his blue car. Tom lost his"
        ));
        // Loss and find reported by pronoun, in the hero's gender after the hero's sentence.
        assert_valid(
            "Once there was a kind girl named Anna. Anna went to the farm. Sadly, she lost her \
             old hat. Anna looked in the barn. Then she found her old hat by the chicken coop.",
        );
    }

    #[test]
    fn wrong_character_at_end() {
        // The helper, by name, finds the hero's object.
        let t = LILY.replace("Lily found her red ball", "Tom found her red ball");
        assert_eq!(invalid(&t), wrong_end("Lily", "Tom"));
        // The helper finds his own thing with "found his".
        let t = LILY.replace("Lily found her red ball", "Tom found his blue car");
        assert_eq!(invalid(&t), wrong_end("Lily", "Tom"));
        // By pronoun of the helper's gender: resolved to the last-named boy.
        let t = LILY.replace("Lily found her red ball", "he found her red ball");
        assert_eq!(invalid(&t), wrong_end("Lily", "Tom"));
        // A third character.
        let t = BEN.replace("Ben found his striped kite", "Max found his striped kite");
        assert_eq!(invalid(&t), wrong_end("Ben", "Max"));
        // A male pronoun when no male has been named: the pronoun itself.
        let t = "Once upon a time, there was a happy girl named Zoe. Zoe lost her pink cup. \
                 Then he found her pink cup.";
        assert_eq!(invalid(t), wrong_end("Zoe", "he"));
    }

    #[test]
    fn wrong_character_loses() {
        let t = LILY.replace("Lily lost her red ball", "Tom lost his red ball");
        assert_eq!(
            invalid(&t),
            Reason::WrongCharacterLoses {
                expected: "Lily".into(),
                found: "Tom".into()
            }
        );
    }

    #[test]
    fn pronoun_mismatches() {
        // A pronoun of the wrong gender for the sentence's named subject.
        let t = LILY.replace("She began to cry.", "Lily began to cry and he was sad.");
        assert_eq!(invalid(&t), pronoun("Lily", "he"));
        // A sentence starting with a pronoun continues the last subject (Tom here).
        let t = LILY.replace(
            "She only found a small rock.",
            "Tom ran. She only found a small rock.",
        );
        assert_eq!(invalid(&t), pronoun("Tom", "She"));
        // The right finder with the wrong possessive.
        let t = BEN.replace("Ben found his striped kite", "Ben found her striped kite");
        assert_eq!(invalid(&t), pronoun("Ben", "her"));
        // The helper's pronoun used for the hero.
        let t = BEN.replace("He felt very sad.", "She felt very sad.");
        assert_eq!(invalid(&t), pronoun("Ben", "She"));
        // The introduction's girl/boy disagrees with the name.
        let t = LILY.replace("little girl named Lily", "little boy named Lily");
        assert_eq!(invalid(&t), pronoun("Lily", "boy"));
    }

    #[test]
    fn object_mismatches() {
        let t = LILY.replace("Lily found her red ball", "Lily found her blue ball");
        assert_eq!(invalid(&t), object("red ball", "blue ball"));
        let t = LILY.replace("Lily found her red ball", "Lily found her red kite");
        assert_eq!(invalid(&t), object("red ball", "red kite"));
        // A missing adjective is a different object: the corpus always names both.
        let t = LILY.replace("Lily found her red ball", "Lily found her ball");
        assert_eq!(invalid(&t), object("red ball", "ball"));
        // The object phrase stops at punctuation, not only at a place.
        let t = BEN.replace(
            "Finally, Ben found his striped kite in the sand.",
            "Finally, Ben found his green kite!",
        );
        assert_eq!(invalid(&t), object("striped kite", "green kite"));
    }

    #[test]
    fn incomplete_stories() {
        // The generation stops before the loss.
        let t = "Once upon a time, there was a little girl named Lily. She loved to sing songs.";
        assert_eq!(invalid(t), Reason::Incomplete(Missing::Loss));
        // ... after the loss, before the find.
        let t = "Once upon a time, there was a little girl named Lily. Suddenly, Lily lost her \
                 red ball. She began to cry.";
        assert_eq!(invalid(t), Reason::Incomplete(Missing::Find));
        // ... in the middle of the find: the unfinished sentence is not read.
        let cut = LILY.find("At last, Lily found her re").expect("in story") + 26;
        assert_eq!(invalid(&LILY[..cut]), Reason::Incomplete(Missing::Find));
        // A find before any loss is no find.
        let t = "There was a boy named Tim. Tim found his old coin. Tim lost his old coin.";
        assert_eq!(invalid(t), Reason::Incomplete(Missing::Find));
        // "lost" without his/her is not a loss.
        let t = "There was a boy named Tim. Tim was lost in the woods. Tim found his old coin.";
        assert_eq!(invalid(t), Reason::Incomplete(Missing::Loss));
    }

    #[test]
    fn no_hero() {
        assert_eq!(invalid(""), Reason::NoHero);
        assert_eq!(invalid("Once upon a time"), Reason::NoHero);
        assert_eq!(
            invalid("Once upon a time, there was a girl. Lily lost her red ball."),
            Reason::NoHero
        );
        assert_eq!(
            invalid("There was a dog named spot. It ran."),
            Reason::NoHero
        );
        // An unknown name still works when girl/boy gives the gender.
        assert_valid(
            "There was a girl named Zara. Zara lost her red cup. Then Zara found her red cup.",
        );
    }

    #[test]
    fn sentence_level_edge_cases() {
        // Quotes ending sentences, an ellipsis, possessive 's, capitalised verbs, line breaks.
        assert_valid(
            "Once upon a time, there was a shy boy named Leo.\nLeo's mom said, \"Be careful!\" \
             Leo waited... Then Leo lost his old drum. He asked, \"Where is it?\"\n\nLeo Found \
             his old drum next to the fence.",
        );
        // A consistent second find is fine; a later wrong one is not.
        let twice = format!("{LILY} Lily found her red ball again.");
        assert_valid(&twice);
        let wrong = format!("{LILY} Tom found his red ball.");
        assert_eq!(invalid(&wrong), wrong_end("Lily", "Tom"));
        // The first violation in reading order wins: a pronoun slip before a wrong object.
        let t = LILY
            .replace("She began to cry.", "He began to cry.")
            .replace("Lily found her red ball", "Lily found her blue ball");
        assert_eq!(invalid(&t), pronoun("Lily", "He"));
        // A sentence with no character leaves the subject to the next pronoun.
        assert_valid(
            "There was a girl named Amy. Amy lost her blue bag. It was getting late. She found \
             her blue bag under the bench.",
        );
        // Text without sentence punctuation never completes a sentence.
        assert_eq!(invalid("Lily Lily Lily"), Reason::NoHero);
        // A loss and a find in one sentence.
        assert_valid("There was a boy named Tim. Tim lost his red car and then found his red car.");
    }

    #[test]
    fn agrees_with_the_generator_on_corpus_stories() {
        for seed in [1u64, 7, 42] {
            for i in 0..300 {
                let story = story_at(seed, i);
                assert_eq!(
                    check_story(&story.text),
                    StoryVerdict::Valid,
                    "seed {seed} story {i}:\n{}",
                    story.text
                );
            }
        }
    }

    #[test]
    fn corpus_stories_with_each_violation() {
        for i in 0..100 {
            let story = story_at(3, i);
            let poss = story.hero_gender.possessive();
            let find = format!("{} found {poss} {}", story.hero, story.object);
            assert!(story.text.contains(&find), "story {i}: no '{find}'");
            // The helper finds it.
            let t = story.text.replace(
                &find,
                &format!("{} found {poss} {}", story.helper, story.object),
            );
            assert_eq!(
                invalid(&t),
                wrong_end(&story.hero, &story.helper),
                "story {i}"
            );
            // Another object is found.
            let (adj, noun) = story.object.split_once(' ').expect("adjective noun");
            let other_adj = if adj == "shiny" { "dull" } else { "shiny" };
            let t = story.text.replace(
                &find,
                &format!("{} found {poss} {other_adj} {noun}", story.hero),
            );
            assert_eq!(
                invalid(&t),
                object(&story.object, &format!("{other_adj} {noun}")),
                "story {i}"
            );
            // A pronoun of the other gender in the last sentence (whose subject is the hero).
            let other = story.hero_gender.other().subject();
            let t = format!("{} The {noun} made {other} smile.", story.text);
            assert_eq!(invalid(&t), pronoun(&story.hero, other), "story {i}");
            // Cut before the find.
            let cut = story.text.find(&find).expect("find");
            let t = &story.text[..cut];
            assert_eq!(invalid(t), Reason::Incomplete(Missing::Find), "story {i}");
        }
    }

    #[test]
    fn arbitrary_text_gets_a_verdict_without_panicking() {
        use rand::{Rng, SeedableRng};
        // Fragments that exercise every branch, including multi-byte characters next to the
        // ASCII punctuation the splitter slices at.
        const PIECES: &[&str] = &[
            "Lily",
            "Tom",
            "Zed",
            "named",
            "girl",
            "boy",
            "lost",
            "found",
            "her",
            "his",
            "she",
            "He",
            "red",
            "ball",
            "under",
            " ",
            " ",
            " ",
            ".",
            "!",
            "?",
            "\"",
            ",",
            "'s",
            "\n\n",
            "é",
            "日本",
            "<|endoftext|>",
            "...",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for _ in 0..3000 {
            let len = rng.random_range(0..60);
            let text: String = (0..len)
                .map(|_| PIECES[rng.random_range(0..PIECES.len())])
                .collect();
            assert_eq!(check_story(&text), check_story(&text), "{text}");
        }
    }

    #[test]
    fn validity_rate_counts() {
        let verdicts = [
            StoryVerdict::Valid,
            StoryVerdict::Invalid(Reason::Incomplete(Missing::Find)),
            StoryVerdict::Valid,
            StoryVerdict::Invalid(object("red ball", "blue ball")),
            StoryVerdict::Invalid(Reason::Incomplete(Missing::Loss)),
        ];
        let rate = validity_rate(&verdicts);
        assert_eq!((rate.total, rate.valid), (5, 2));
        assert_eq!(rate.valid_fraction(), Some(0.4));
        assert_eq!(rate.by_reason[&ReasonKind::Incomplete], 2);
        assert_eq!(rate.by_reason[&ReasonKind::ObjectMismatch], 1);
        assert_eq!(rate.by_reason[&ReasonKind::PronounMismatch], 0);
        assert_eq!(rate.by_reason.len(), ReasonKind::ALL.len());
        assert_eq!(validity_rate(&[]).valid_fraction(), None);
        let labels: Vec<&str> = ReasonKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(
            labels,
            [
                "no_hero",
                "wrong_character_loses",
                "wrong_character_at_end",
                "pronoun_mismatch",
                "object_mismatch",
                "incomplete"
            ]
        );
        assert_eq!(
            wrong_end("Lily", "Tom").to_string(),
            "Tom finds the object, not the hero Lily"
        );
    }
}

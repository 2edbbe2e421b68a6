#!/usr/bin/env python3
"""tools/tokref/gen_corpus.py — the tokenizer test corpus (deterministic).

Writes a JSON array of strings to stdout: hand-written cases for every rule of the Qwen2
tokenizer (spec §3) plus seeded random mixtures.  tokref.mjs turns it into the expected ids
(tests/data/tokenizer/corpus_expected.json); see tools/tokref/README.md.

Random characters are drawn only among code points assigned in Unicode 14.0 (this Python's
unicodedata must be 14.0, i.e. Python 3.11, which is also the Unicode version of Debian 12's
PCRE2): newer characters have no stable \\p{L}/\\p{N} class across the implementations compared.
NUL is left out of the corpus (the JSON reader we use stops strings at \\u0000); the unit test
covers it.
"""
import json
import random
import sys
import unicodedata

if unicodedata.unidata_version != "14.0.0":
    sys.exit("gen_corpus.py: needs Unicode 14.0.0 (Python 3.11); this Python has "
             + unicodedata.unidata_version)

R = random.Random(20251124)
out = []


def add(*strings):
    for s in strings:
        out.append(s)


# --- 1. sentences in many scripts ---------------------------------------------------------
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Describe this image in one sentence, please!",
    "Le cœur a ses raisons que la raison ne connaît point.",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein.",
    "¿Dónde está la biblioteca? ¡Aquí!",
    "Ação, coração, informação — pão e feijão.",
    "Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Árvíztűrő tükörfúrógép. Þetta er íslenska: ð, þ, æ.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "Բարեւ, աշխարհ։ Գեղեցիկ օր է։",
    "გამარჯობა, მსოფლიო!",
    "שלום עולם! זה טקסט בעברית עם ניקוד: שָׁלוֹם.",
    "مرحبا بالعالم! هذا نص عربي مع تشكيل: العَرَبِيَّة.",
    "ܫܠܡܐ ܥܠܡܐ",
    "سلام دنیا، حال شما چطور است؟",
    "اردو ایک خوبصورت زبان ہے۔",
    "नमस्ते दुनिया! यह हिन्दी का वाक्य है।",
    "হ্যালো বিশ্ব! এটি বাংলা।",
    "ਸਤਿ ਸ੍ਰੀ ਅਕਾਲ ਦੁਨੀਆ",
    "હેલો વિશ્વ! ગુજરાતી",
    "ନମସ୍କାର ବିଶ୍ୱ",
    "வணக்கம் உலகம்! தமிழ் மொழி.",
    "హలో ప్రపంచం! తెలుగు.",
    "ನಮಸ್ಕಾರ ಜಗತ್ತು! ಕನ್ನಡ.",
    "ഹലോ ലോകം! മലയാളം.",
    "ආයුබෝවන් ලෝකය!",
    "สวัสดีชาวโลก ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
    "ສະບາຍດີຊາວໂລກ",
    "བཀྲ་ཤིས་བདེ་ལེགས། འཛམ་གླིང་།",
    "မင်္ဂလာပါ ကမ္ဘာ",
    "សួស្តី​ពិភពលោក",
    "ᠰᠠᠶᠢᠨ ᠪᠠᠶᠢᠴᠠᠭᠠ ᠤᠤ",
    "ሰላም ልዑል! አማርኛ።",
    "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
    "ᐊᐃᓐᖓᐃ ᓄᓇᕗᑦ",
    "ᚠᚢᚦᚨᚱᚲ ᚷᚹ ᚺᚾᛁᛃ",
    "᚛ᚑᚌᚐᚋ᚜",
    "你好，世界！这是一个没有空格的中文句子，用来测试长的汉字序列。",
    "繁體中文：臺灣、香港與澳門的書寫系統。",
    "こんにちは世界！ひらがなとカタカナ、そして漢字が混ざっています。",
    "ｶﾀｶﾅ（半角）とカタカナ（全角）。",
    "안녕하세요 세계! 한국어 문장입니다.",
    "Xin chào thế giới! Tiếng Việt có nhiều dấu.",
    "Sawubona mhlaba! Habari dunia! Ẹ kú àárọ̀!",
    "Salam dünya! Azərbaycan dili. Türkçe: ığüşöç İ.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "ꆈꌠꁱꂷ ꀉꂿ",
    "ꕙꔤ ꕞꕮ",
    "𝐁𝐨𝐥𝐝 𝑰𝒕𝒂𝒍𝒊𝒄 𝔉𝔯𝔞𝔨𝔱𝔲𝔯 𝕯𝖔𝖚𝖇𝖑𝖊",
    "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ　１２３",
    "𠀀𠀁𠀂 𪚥 𡨸漢字 (CJK Ext B)",
]
add(*SENTENCES)
for s in SENTENCES:  # with leading space, trailing newline, upper case
    add(" " + s, s + "\n", s.upper(), s.lower() + "  ")

# --- 2. emoji -----------------------------------------------------------------------------
EMOJI = [
    "👨‍👩‍👧‍👦", "👩🏽‍💻", "👍🏻👍🏼👍🏽👍🏾👍🏿", "🏳️‍🌈", "🏴‍☠️", "🇫🇷🇯🇵🇧🇷🇺🇦",
    "1️⃣2️⃣#️⃣", "❤️‍🔥", "🧑🏿‍🤝‍🧑🏻", "😀😃😄😁😆", "☺️☺︎", "🫠🫶🏾", "🐈‍⬛",
    "👁️‍🗨️", "🤷‍♀️🤷🏽‍♂️", "🏃🏾‍♀️‍➡️", "©️®️™️", "🀄🃏🎴",
]
for e in EMOJI:
    add(e, "I love " + e + "!", e + e, "emoji:" + e + "end", " " + e + " ")

# --- 3. NFC: combining marks that normalisation changes ------------------------------------
NFC_CASES = [
    "e\u0301", "cafe\u0301", "A\u030A", "\u212B", "\u2126", "\u212A elvin",
    "a\u0323\u0307", "a\u0307\u0323", "q\u0307\u0323", "s\u0323\u0307",
    "\u1100\u1161\u11A8", "\u1112\u1161\u11AB\u1100\u1173\u11AF",  # Hangul jamo -> syllables
    "\u0958", "\u0915\u093C",  # Devanagari qa (composition exclusion)
    "\u00C5\u0301", "o\u0308\u0304", "\u1E9B\u0323",
    "\u0041\u0300\u0301\u0302", "n\u0303o",
    "\u05D0\u05B7", "\u0627\u0653", "\u0648\u0654",
    "\u0CC6\u0CC2", "\u0DD9\u0DCF", "\u1025\u102E",
    "\u30AB\u3099", "\u30CF\u309A", "\u304B\u3099",
    "e\u0301\u0301", "\u0301", "\u0301a", "x\u0301", " \u0301", "\u0344", "\u0340\u0341",
    "\uF900\uF901", "\u2000\u2001", "\u00C0\u0316", "\u01D5\u0301",
    "Amélie vs Ame\u0301lie", "résumé re\u0301sume\u0301", "ÅNGSTRÖM A\u030ANGSTRO\u0308M",
]
for s in NFC_CASES:
    add(s, "word " + s + " word", s * 3)
# random letters followed by random combining marks
MARKS = [c for c in range(0x300, 0x370)] + [0x1DC0, 0x1DC1, 0x20D0, 0x20D1, 0x0591, 0x064B, 0x093C, 0x3099]
BASES = "aeiouAEIOUcnsyzCNSYZ" + "αεηιουωΑΕΗΙΟΥΩ" + "иеаИЕА" + "かきくカキク"
for _ in range(120):
    s = ""
    for _ in range(R.randint(1, 6)):
        s += R.choice(BASES) + "".join(chr(R.choice(MARKS)) for _ in range(R.randint(0, 3)))
    add(s)

# --- 4. digits ----------------------------------------------------------------------------
for n in (1, 2, 3, 4, 7, 10, 16, 33, 100, 257):
    add("".join(R.choice("0123456789") for _ in range(n)))
add("1234567890" * 20, "3.14159265358979323846264338327950288419716939937510",
    "1,000,000.00 and 1 000 000", "(555) 123-4567", "2025-11-24T06:00:00Z", "v1.2.3-rc.4",
    "٠١٢٣٤٥٦٧٨٩ ۰۱۲۳۴۵۶۷۸۹ ०१२३४५६७८९", "１２３４５ ①②③ ⅠⅡⅢⅣ ½¼¾ ²³¹", "0x1F600 0b1010 0o777 1e-9",
    "I have 3 apples and 12 oranges, total 15.", "第3章第12节", "12abc34def56")

# --- 5. whitespace ------------------------------------------------------------------------
WS = [" ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\t\t", "   \t \n  ", "\u00A0",
      "\u3000", "\u2028", "\u2029", "\u0085", "\u180E", "\uFEFF", "\u200B", "\x0b", "\x0c",
      "\x1c", "\x1d", "\x1e", "\x1f", "\u2000", "\u2009", "\u202F", "\u205F", "\u1680"]
add("", " ", "  ", "\t", "\n", "\r\n", "\n\n\n", "   \n   ", " \t \t ", "\r", "\r\r\n\n",
    " " * 37, "\t" * 9, "\n" * 12, "\u3000\u3000", "\u00A0 \u00A0")
for w in WS:
    add("a" + w + "b", w + "word", "word" + w, w, w * 3, "x" + w + w + "y", "." + w + "!",
        "1" + w + "2", "hello" + w + "\n" + "world")
for _ in range(150):
    s = ""
    for _ in range(R.randint(1, 8)):
        r = R.random()
        if r < 0.45:
            s += R.choice(WS) * R.randint(1, 4)
        elif r < 0.75:
            s += R.choice(["word", "Word", "x", "ünï", "日本", "123", "!?", "...", "'s", "'S", "—"])
        else:
            s += R.choice(["\n", "\r\n", " \n", "\n "])
    add(s)

# --- 6. contractions ----------------------------------------------------------------------
CONTR = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
for c in CONTR:
    for variant in {c, c.upper(), c.capitalize(), c[0] + c[1:].swapcase()} | (
            {c[:2] + c[2:].upper()} if len(c) > 2 else set()):
        add("it" + variant, "IT" + variant + " here", variant, " " + variant, variant + "x",
            "word" + variant + variant)
add("I'm sure you'll say it's what we've done, they'd've LIKED it, DON'T YOU'RE",
    "rock'n'roll o'clock y'all ma'am", "'ſ it'ſ IT'ſ", "'ſx it'ſelf 'ſs X'ſT", "'Sx 'sx 'Tx 'REx 'rex", "it\u2019s don\u2019t", "''s ''", "'",
    "'''", "'s's's", "Xs'T", "the cat's toy's color's", "\"quoted\" 'single'")

# --- 7. code ------------------------------------------------------------------------------
CODE = [
    "int main(int argc, char **argv) {\n    printf(\"hello, world\\n\");\n    return 0;\n}\n",
    "def f(x):\n\tif x > 0:\n\t\treturn x ** 2\n\treturn None\n",
    "const add = (a, b) => a + b; // arrow\nconsole.log(add(1, 2));",
    "{\"key\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\"}}",
    "<html><head><title>T</title></head><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "#include <stdio.h>\n#define MAX(a,b) ((a)>(b)?(a):(b))\n",
    "    indented four\n        indented eight\n\tindented tab\n",
    "x+=1;y-=2;z*=3;w/=4;a%=5;b&=6;c|=7;d^=8;e<<=9;f>>=10;",
    "if (a && b || !c) { return a->b.c[d]; }",
    "$ ls -la | grep \"\\.c$\" > out.txt 2>&1 && echo done",
    "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
    "```python\nprint('hi')\n```",
    "a_b_c __init__ self.__dict__ CamelCaseName snake_case_name kebab-case-name",
    "=====\n-----\n*****\n#####\n~~~~~",
    "\\n\\t\\r\\\\ \\u00e9 \\x41",
]
for c in CODE:
    add(c, c.replace("\n", "\r\n"), c.strip())

# --- 8. URLs, paths, e-mail -----------------------------------------------------------------
add("https://github.com/ByteDance-Seed/Bagel/blob/main/inferencer.py#L15",
    "http://example.com:8080/path/to/page?query=1&b=two#frag",
    "ftp://user:pass@host.example.org/file.tar.gz", "mailto:someone@example.com",
    "Visit https://www.example.co.uk/über/straße?q=日本語 now.", "/usr/local/lib/x86_64-linux-gnu/libfoo.so.1",
    "C:\\Users\\Name\\Documents\\file (1).txt", "user.name+tag@sub.domain.example",
    "https://t.co/AbCdEf123", "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
    "www.example.com/a%20b%2Fc", "git@github.com:huggingface/transformers.git")

# --- 9. literal special tokens --------------------------------------------------------------
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|vision_start|>", "<|vision_end|>",
           "<|image_pad|>", "<|video_pad|>", "<|object_ref_start|>", "<|box_end|>", "<tool_call>",
           "</tool_call>", "<|fim_prefix|>", "<|file_sep|>", "<|repo_name|>", "<|quad_start|>"]
NOT_SPECIAL = ["<think>", "</think>", "<|im_start", "im_end|>", "<|im_", "<||>", "<|", "|>",
               "<tool_response>", "<|IM_START|>", "< |im_start|>"]
for s in SPECIAL:
    add(s, "a" + s + "b", " " + s + " ", s + s, "text " + s + "\nmore", "\n" + s + "\n",
        s + "user\nWhat is this?" + "<|im_end|>")
for s in NOT_SPECIAL:
    add(s, "x " + s + " y", s + "<|im_end|>")
add("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start<|im_end|>", "<|im_start|<|im_end|>>", "<<|im_end|>>", "<|<|im_start|>|>",
    "<|vision_start|><|image_pad|><|image_pad|><|vision_end|>", "<think> planning </think> image",
    "<|endoftext|><|endoftext|><|endoftext|>", "<tool_call>{\"name\": \"f\"}</tool_call>",
    "é<|im_end|>\u0301", "<|im_end|>\u0301", "e\u0301<|im_start|>", "日本<|im_start|>語",
    "  <|im_start|>  ", "\t<|im_end|>\n", "<|fim_prefix|>def<|fim_suffix|>pass<|fim_middle|>")

# --- 10. empty and whitespace-only lines (again, many shapes) --------------------------------
for n in range(1, 9):
    add(" " * n, "\t" * n, "\n" * n, " \t" * n, "\r\n" * n, " " * n + "\n", "\n" + " " * n)

# --- 11. repeated characters (BPE overlaps) and long words ---------------------------------
for ch in ["a", "aa", "ab", "x", " ", "=", "-", "ー", "啊", "ा", "🙂", "ñ", "\u0301", ".", "0", "s"]:
    for n in (2, 3, 4, 5, 8, 13, 40, 70):
        add(ch * n)
add("supercalifragilisticexpialidocious" * 8,
    "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft",
    "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "中华人民共和国成立于一九四九年十月一日首都北京是全国的政治文化中心" * 6,
    "ภาษาไทยเป็นภาษาที่ไม่มีการเว้นวรรคระหว่างคำทำให้การตัดคำเป็นเรื่องยาก" * 4,
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん" * 3,
    "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(600)),
    "".join(chr(0xAC00 + (i * 104729) % 11172) for i in range(300)))

# --- 12. random mixtures -------------------------------------------------------------------
def assigned(cp):
    c = chr(cp)
    cat = unicodedata.category(c)
    return cat not in ("Cn", "Cs", "Co") and cp != 0


BLOCKS = [(0x20, 0x7E), (0xA0, 0x24F), (0x250, 0x2FF), (0x370, 0x3FF), (0x400, 0x52F),
          (0x530, 0x58F), (0x590, 0x5FF), (0x600, 0x6FF), (0x700, 0x74F), (0x780, 0x7BF),
          (0x900, 0xDFF), (0xE00, 0xEFF), (0xF00, 0xFFF), (0x1000, 0x109F), (0x10A0, 0x10FF),
          (0x1100, 0x11FF), (0x1200, 0x139F), (0x13A0, 0x13FF), (0x1400, 0x167F), (0x1680, 0x16FF),
          (0x1780, 0x17FF), (0x1800, 0x18AF), (0x1E00, 0x1FFF), (0x2000, 0x206F), (0x2070, 0x209F),
          (0x20A0, 0x20CF), (0x2100, 0x214F), (0x2150, 0x218F), (0x2190, 0x23FF), (0x2460, 0x24FF),
          (0x2500, 0x27BF), (0x2E80, 0x2FDF), (0x3000, 0x303F), (0x3040, 0x30FF), (0x3100, 0x31FF),
          (0x3200, 0x33FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xA000, 0xA4CF), (0xA500, 0xA63F),
          (0xAC00, 0xD7A3), (0xF900, 0xFAFF), (0xFB00, 0xFDFF), (0xFE00, 0xFE6F), (0xFF00, 0xFFEF),
          (0x10000, 0x1007F), (0x10300, 0x1034F), (0x1D400, 0x1D7FF), (0x1F000, 0x1F0FF),
          (0x1F300, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF), (0x20000, 0x2A6DF),
          (0xE0000, 0xE007F)]


def rand_char():
    while True:
        lo, hi = R.choice(BLOCKS)
        cp = R.randint(lo, hi)
        if assigned(cp):
            return chr(cp)


WORDS = ["the", "The", "THE", "image", "red", "cube", "生成", "图片", "画像", "한국", "Москва", "café",
         "naïve", "x", "I", "a", "an", "of", "make", "it", "green", "🙂", "…", "—", "123", "4", "!!",
         "?", ",", ".", "'s", "'LL", "<|im_end|>", "<|im_start|>", "<think>", " ", "  ", "\n", "\t"]
for _ in range(500):
    parts = []
    for _ in range(R.randint(1, 12)):
        r = R.random()
        if r < 0.5:
            parts.append(R.choice(WORDS))
        elif r < 0.85:
            parts.append("".join(rand_char() for _ in range(R.randint(1, 6))))
        else:
            parts.append(R.choice([" ", "\n", "\t", "\r\n", "  ", "\u3000", "\u00A0"]))
    add("".join(parts))
for _ in range(250):  # pure random code points
    add("".join(rand_char() for _ in range(R.randint(1, 40))))
for _ in range(150):  # random printable ASCII
    add("".join(chr(R.randint(0x20, 0x7E)) for _ in range(R.randint(1, 60))))
for _ in range(100):  # ASCII with control characters (no NUL)
    add("".join(chr(R.choice([R.randint(1, 0x1F), 0x7F, R.randint(0x20, 0x7E)])) for _ in range(R.randint(1, 30))))

out = list(dict.fromkeys(out))  # unique, first occurrence order
json.dump(out, sys.stdout, ensure_ascii=False, indent=0)
sys.stdout.write("\n")
print(f"gen_corpus.py: {len(out)} strings", file=sys.stderr)

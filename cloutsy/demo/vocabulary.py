"""The demo's vocabulary: names, places, words and templates the generators draw from.

Data only, in the order the generators index it (changing an entry or its position
changes the rows a seed gives). Slugs are the niche catalogue's (`cloutsy.catalogue`).
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Popularity order (most popular first) of the catalogue's slugs among creators and
# brands; they differ on purpose so demand and supply do not line up.
INFLUENCER_RANK = _words(
    """
    fashion beauty lifestyle food travel fitness comedy gaming technology music
    health-and-wellness parenting photography education sports art-and-design home-and-decor
    pets finance automotive diy-and-crafts books business sustainability
    """
)
BRAND_RANK = _words(
    """
    beauty fashion technology food finance health-and-wellness fitness travel education
    lifestyle home-and-decor gaming automotive parenting business sports sustainability pets
    music photography comedy art-and-design books diy-and-crafts
    """
)
# Niches that are picked together (`generate.AFFINITY_BOOST` times likelier).
AFFINITY = (
    ("fashion", "beauty", "lifestyle", "photography"),
    ("fitness", "health-and-wellness", "sports", "food"),
    ("technology", "gaming", "automotive"),
    ("finance", "business", "education", "books"),
    ("travel", "photography", "food", "lifestyle"),
    ("parenting", "home-and-decor", "diy-and-crafts", "pets"),
    ("music", "comedy", "art-and-design"),
    ("sustainability", "home-and-decor", "health-and-wellness"),
)

FEMALE = _words(
    """
    Aadhya Aanya Ananya Anika Avni Diya Isha Ishita Kavya Kiara Meera Myra Navya Neha Nisha
    Pooja Priya Riya Saanvi Sara Shreya Simran Sneha Tanvi Trisha Zara Aditi Divya Kritika
    Mahi
    """
)
MALE = _words(
    """
    Aarav Aditya Arjun Aryan Dhruv Ishaan Kabir Karan Krishna Manav Nikhil Pranav Rahul
    Reyansh Rohan Sahil Shaurya Siddharth Varun Vihaan Vivaan Yash Aman Dev Harsh Kunal Mihir
    Neel
    """
)
NEUTRAL = _words(
    """
    Ari Kiran Noor Rain Sam Shan Jyoti Sasha Alex Robin
    """
)
SURNAMES = _words(
    """
    Sharma Verma Gupta Iyer Nair Reddy Patel Shah Mehta Joshi Kapoor Malhotra Khan Singh Das
    Bose Chatterjee Banerjee Menon Pillai Rao Kulkarni Deshpande Jain Agarwal Bhatt Chopra
    Sethi Fernandes DSouza Mishra Pandey Saxena Tiwari Yadav Gill Sandhu
    """
)
CITIES = _words(
    """
    Mumbai Delhi Bengaluru Hyderabad Chennai Kolkata Pune Ahmedabad Jaipur Lucknow Kochi
    Chandigarh Indore Goa Surat Bhopal
    """
)
BIO_OPENERS = (
    "Creating {niche} content from {city}.",
    "{city}-based creator sharing {niche} stories.",
    "Your daily dose of {niche}, straight from {city}.",
    "I talk about {niche}. Based in {city}.",
    "{niche} enthusiast | {city} | collabs open.",
)
BIO_CLOSERS = (
    "",
    " New videos every week.",
    " DM for collaborations.",
    " Sharing what I learn along the way.",
    " Honest reviews, no fluff.",
)
BRAND_BIOS = (
    "{brand} is a homegrown brand from {city}.",
    "Made in {city}: {brand} builds products people come back to.",
    "{brand}, {city}. Working with creators since day one.",
    "Thoughtfully made in {city}. Say hello to {brand}.",
)
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
BRAND_WORDS = _words(
    """
    Urban Saffron Indigo Monsoon Lotus Banyan Peacock Teal Amber Coral Cedar Ember Nimbus
    Orbit Pebble Quartz Sage Tide Vista Zenith Mango Chai Masala Kesar Neem Tulsi Bamboo Jute
    Marigold
    """
)
BRAND_NOUNS = _words(
    """
    Loom Kitchen Labs Threads Botanicals Studio Works Foods Wellness Gear Tech Finance Living
    Travels Beauty Co Collective Naturals Motors Pets Books Games Fitness Crafts
    """
)
LEGAL_SUFFIX = {
    "private_limited": "Private Limited",
    "public_limited": "Limited",
    "llp": "LLP",
    "partnership": "& Associates",
    "sole_proprietorship": "Enterprises",
    "other": "Ventures",
}
DESIGNATIONS = (
    "Marketing Manager",
    "Brand Manager",
    "Founder",
    "Co-founder",
    "Growth Lead",
    "Social Media Manager",
    "Head of Marketing",
    "Partnerships Manager",
)
USERNAME_STYLES = ("{f}.{la}", "{f}_{la}", "{f}{la}", "the.{f}")
FIRST_NAMES = FEMALE + MALE + NEUTRAL

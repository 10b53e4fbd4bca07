"""Currencies of feed amounts: ISO 4217 codes and the symbols that name exactly one of them.

An amount names its currency with an ISO 4217 code ("48900.00 CAD", "CAD 48,900.00",
"USD$12,995") or with a symbol that only one currency uses ("€ 12.995,00", "US$12,995").
Symbols several currencies share ("$", "£", "¥", "kr", ...) say nothing about the currency: a
"$" is the dollar of the United States, Canada, Australia, Mexico (peso) and a dozen more.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# ISO 4217 (list one, 2025): every currency and fund code, plus codes replaced in the last few
# years that older systems still write (ANG, SLL, ZWL). Left out: precious metals (XAU, XAG, XPD,
# XPT), bond-market units (XBA-XBD), XDR, XSU, XUA, the testing code XTS and XXX ("no
# currency"): nobody prices a vehicle in them.
_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN
    ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD
    JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
    MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
    QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS
    TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG
    XOF XPF YER ZAR ZMW ZWG ZWL
"""
ISO_4217_CODES: frozenset[str] = frozenset(_CODES.split())

# Symbols (upper-cased) that belong to one currency only.
SYMBOL_CODES: dict[str, str] = {
    "€": "EUR",
    "₹": "INR",
    "₺": "TRY",
    "₽": "RUB",
    "₪": "ILS",
    "₱": "PHP",
    "₫": "VND",
    "฿": "THB",
    "₴": "UAH",
    "₦": "NGN",
    "₸": "KZT",
    "₲": "PYG",
    "₾": "GEL",
    "₼": "AZN",
    "US$": "USD",
    "CA$": "CAD",
    "A$": "AUD",
    "AU$": "AUD",
    "NZ$": "NZD",
    "HK$": "HKD",
    "MX$": "MXN",
    "S$": "SGD",
    "R$": "BRL",
    "NT$": "TWD",
}
# Symbols (upper-cased) shared by several currencies: accepted around an amount, no currency
# implied. "C$" is the Canadian dollar to some and the Nicaraguan córdoba officially.
SHARED_SYMBOLS: frozenset[str] = frozenset({"$", "£", "¥", "￥", "₩", "₡", "₨", "KR", "C$"})

# Currencies as small integers, so a chunk's rows carry one int16 each: 0 is "none", code i is
# CURRENCY_CODES[i].
CURRENCY_CODES: tuple[str, ...] = ("", *sorted(ISO_4217_CODES))
CURRENCY_INDEX: dict[str, int] = {code: index for index, code in enumerate(CURRENCY_CODES) if code}
SYMBOL_INDEX: dict[str, int] = {
    symbol: CURRENCY_INDEX[code] for symbol, code in SYMBOL_CODES.items()
}
# CURRENCY_CODES as an object array (None for 0), to turn the integers back into a column.
CODE_VALUES: npt.NDArray[np.object_] = np.array([None, *CURRENCY_CODES[1:]], dtype=object)

"""Word lists for synthetic clinical notes: drugs with strengths and forms, problems, tests, procedures,
social history phrases and filler sentences. Invented combinations; no real patient text.

Some entries are deliberately unicode ("µg", "naïve", "°C", "fiancé") so readers must count characters.
"""

from __future__ import annotations

# (drug, strengths, forms)
DRUGS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("lisinopril", ("10 mg", "20 mg", "40 mg"), ("tablet",)),
    ("metoprolol tartrate", ("25 mg", "50 mg"), ("tablet",)),
    ("aspirin", ("81 mg", "325 mg"), ("tablet", "chewable tablet")),
    ("atorvastatin", ("20 mg", "40 mg", "80 mg"), ("tablet",)),
    ("metformin", ("500 mg", "1000 mg"), ("tablet",)),
    ("warfarin", ("2 mg", "5 mg"), ("tablet",)),
    ("furosemide", ("20 mg", "40 mg"), ("tablet", "injection")),
    ("vancomycin", ("1 g", "1.25 g"), ("injection",)),
    ("heparin", ("5000 units",), ("injection",)),
    ("insulin glargine", ("10 units", "22 units"), ("injection", "pen")),
    ("levothyroxine", ("50 µg", "88 µg", "125 µg"), ("tablet",)),
    ("fentanyl", ("25 µg/hr", "50 µg/hr"), ("patch",)),
    ("ondansetron", ("4 mg", "8 mg"), ("tablet", "ODT")),
    ("pantoprazole", ("40 mg",), ("tablet", "capsule")),
    ("amoxicillin", ("500 mg", "875 mg"), ("capsule", "tablet")),
    ("oxycodone", ("5 mg", "10 mg"), ("tablet",)),
    ("acetaminophen", ("325 mg", "650 mg"), ("tablet",)),
    ("prednisone", ("10 mg", "40 mg"), ("tablet",)),
    ("Lasix", ("40 mg",), ("tablet",)),
    ("Coumadin", ("5 mg",), ("tablet",)),
)
ROUTES = ("PO", "IV", "SC", "by mouth", "subcutaneously", "topically")
FREQUENCIES = ("daily", "BID", "TID", "q6h", "q8h prn", "twice a day", "every morning", "at bedtime", "once weekly")
DURATIONS = ("for 7 days", "for 10 days", "x 2 weeks", "for one month", "for 5 days")
DOSAGES = ("1", "2", "one", "two", "1-2")
REASONS = ("hypertension", "atrial fibrillation", "pain", "nausea", "pneumonia", "cellulitis",
           "type 2 diabetes", "hypothyroidism", "CHF exacerbation", "DVT prophylaxis", "constipation")
ADES = ("rash", "hives", "acute kidney injury", "hypotension", "bradycardia", "thrombocytopenia",
        "diarrhea", "hyperkalemia", "GI bleed")

PROBLEMS = ("chest pain", "shortness of breath", "pneumonia", "hypertension", "atrial fibrillation",
            "a urinary tract infection", "acute renal failure", "anemia", "fever", "cough", "a perianal rash",
            "diabetes mellitus", "congestive heart failure", "hypokalemia", "lower extremity edema",
            "an abdominal mass", "altered mental status", "a small bowel obstruction")
TESTS = ("a chest x-ray", "an echocardiogram", "a CT scan of the abdomen", "blood cultures",
         "a urinalysis", "an EKG", "her hemoglobin", "the potassium", "an MRI of the brain", "serial troponins")
TREATMENTS = ("nystatin powder", "IV fluids", "antibiotics", "a blood transfusion", "lasix", "insulin",
              "potassium chloride", "a cardiac catheterization", "physical therapy", "heparin drip",
              "levofloxacin", "an appendectomy")
PROCEDURES = ("cardiac catheterization", "appendectomy", "knee arthroscopy", "colonoscopy",
              "central line placement", "thoracentesis")
BODY_SITES = ("knee", "ankle", "shoulder", "hip", "wrist")

FILLER = (
    "The patient was seen and examined at the bedside.",
    "Vital signs were stable throughout the stay.",
    "Temperature 38.2 °C on admission, afebrile since.",
    "She tolerated a regular diet and ambulated without assistance.",
    "Family was updated at length regarding the plan of care.",
    "Labs were notable for a mildly elevated creatinine which improved with hydration.",
    "Physical therapy evaluated the patient and recommended discharge home with services.",
    "He denies recent travel or sick contacts.",
    "Case management assisted with discharge planning.",
    "The remainder of the review of systems was negative.",
    "Follow-up appointments were scheduled with primary care within one week.",
    "Code status was confirmed as full code.",
)
SECTIONS = ("Brief Hospital Course:", "History of Present Illness:", "Past Medical History:",
            "Discharge Medications:", "Discharge Instructions:", "Physical Exam:", "Social History:")

OCCUPATIONS = ("teacher", "accountant", "construction worker", "nurse", "truck driver", "café owner",
               "engineer", "cashier")

"""Earshot's starter playbooks: a written plan for each common kind of post, with templates.

Admins edit them (Django admin). Templates are starting points the draft personalises: the
customer's name, their own words, the agent's initials. Each plan's guidance says what to do.
"""

from django.db import migrations

NEEDS_APPROVAL = "needs approval"

# (name, order, phrases, sentiment, questions only, guidance, [templates], [dm invites])
STARTER = [
    (
        "Outage",
        10,
        "down\noutage\nnot working\nnot loading\ncan't log in\ncannot log in\nwon't load\ncrash\ncrashing\nerror\nbroken",
        "any",
        False,
        "Acknowledge the problem, say the team is on it, and promise an update. Check the status page before replying; never blame their device or connection.",
        [
            "Hi {name}, so sorry about {their_words}, and thanks for flagging it. Our team is working on it right now and I'll let you know as soon as it's fixed. Really appreciate your patience! ^{agent_initials}",
            "Hi {name}, I'm sorry about {their_words}, thank you for telling us. We're on it and I'll update you here the moment it's sorted. Thanks for bearing with us! ^{agent_initials}",
            "Hi {name}, apologies for {their_words}, and thank you for letting us know. Our engineers are on it and I'll keep you posted personally. Thanks so much for your patience! ^{agent_initials}",
        ],
    ),
    (
        "Billing",
        20,
        "charged\ncharge\nrefund\nbilling\nbill\ninvoice\npayment\ndouble charged\novercharged\nsubscription\nmoney back",
        "any",
        False,
        "Never ask for card details in public. Thank them, take it to a DM to check the account, and say when they will hear back.",
        [
            "Hi {name}, sorry about {their_words}, thank you for raising it. I'd love to help sort this out: please DM us {dm_link} and I'll check your account personally. ^{agent_initials}",
            "Hi {name}, I'm sorry about {their_words}. Happy to look into it right away: send us a DM {dm_link} so we can keep your details private. Thanks! ^{agent_initials}",
            "Hi {name}, apologies for {their_words}, and thanks for reaching out. We want to make this right: DM us {dm_link} and I'll get it resolved with you. ^{agent_initials}",
        ],
    ),
    (
        "Late delivery",
        30,
        "late\ndelivery\ndelivered\nhasn't arrived\nhas not arrived\nstill waiting\nwhere is my\nparcel\npackage\nshipping\norder",
        "negative",
        False,
        "Thank them, offer to track the order, and take the order number in a DM. Give a realistic time, never a guess.",
        [
            "Hi {name}, so sorry about {their_words}, thanks for letting us know. I'd be glad to track it down for you: DM us your order number {dm_link} and I'll follow it up. ^{agent_initials}",
            "Hi {name}, I'm sorry about {their_words}, thank you for your patience. Send us a DM with your order number {dm_link} and I'll personally chase it up. ^{agent_initials}",
            "Hi {name}, apologies for {their_words}, and we really appreciate you telling us. Happy to help: DM your order details {dm_link} and I'll get you an update today. ^{agent_initials}",
        ],
    ),
    (
        "Account locked",
        40,
        "locked\nlocked out\npassword\nreset\nsuspended\nhacked\nverify\nverification\nlogin\nlog in",
        "any",
        False,
        "Never ask for a password. Take it to a DM to verify who they are, then walk them through the reset.",
        [
            "Hi {name}, sorry about {their_words}, thanks for reaching out. I'd be glad to help you get back in: please DM us {dm_link} and we'll sort it out together. ^{agent_initials}",
            "Hi {name}, I'm sorry about {their_words}, thank you for flagging it. Happy to help you regain access: send us a DM {dm_link} (never your password) and I'll take it from there. ^{agent_initials}",
        ],
    ),
    (
        "Product defect",
        50,
        "broke\nbroken\ndefective\nfaulty\nleaking\nleaks\nstopped working\ncracked\nburnt\nstale\ncold\nwrong",
        "negative",
        False,
        "Thank them for the detail, offer a replacement or refund in DM, and log the defect for the product team.",
        [
            "Hi {name}, so sorry about {their_words}, thank you for letting us know. That's not the quality we want for you: DM us {dm_link} and I'll gladly arrange a replacement. ^{agent_initials}",
            "Hi {name}, I'm sorry about {their_words}, thanks for telling us. We'd love to make it right: DM us {dm_link} and I'll sort a replacement or refund for you. ^{agent_initials}",
            "Hi {name}, apologies for {their_words}, and we really appreciate the heads-up. I've shared it with our product team; DM us {dm_link} and I'll help you with a fix. ^{agent_initials}",
        ],
    ),
    (
        "Feature request",
        60,
        "wish\nplease add\nwould love\nfeature\nsuggestion\nshould add\nit would be great\ncan you add",
        "any",
        False,
        "Thank them for the idea, pass it to the product team, and never promise a date.",
        [
            "Hi {name}, love this idea: {their_words}. I've passed it on to our product team. Thanks for helping us get better! ^{agent_initials}",
            "Hi {name}, thanks for the great suggestion about {their_words}! I've shared it with the team who decide what we build next. ^{agent_initials}",
        ],
    ),
    (
        "Praise",
        70,
        "",
        "positive",
        False,
        "Celebrate with them: thank them by name, mention what they loved, and pass it on to the team. Loyal fans may deserve a surprise.",
        [
            "Hi {name}, thank you so much for {their_words}! This made our day and we'll pass it on to the team. ^{agent_initials}",
            "Hi {name}, we love hearing this! Thanks for sharing {their_words}, it means a lot to everyone here. ^{agent_initials}",
            "Hi {name}, wow, thank you for {their_words}! So glad you're enjoying it, see you again soon. ^{agent_initials}",
            "Hi {name}, you've made the whole team smile with {their_words}. Thank you, and enjoy! ^{agent_initials}",
            "Hi {name}, that's wonderful to read: {their_words}. Thanks for being with us, we appreciate you! ^{agent_initials}",
        ],
    ),
    (
        "Question",
        80,
        "",
        "any",
        True,
        "Answer the question itself if you can; if you need details, ask for them once, kindly. Link to the help page when it helps.",
        [
            "Hi {name}, thanks for asking about {their_words}. Happy to help with that: I'll look into it and get back to you shortly. ^{agent_initials}",
            "Hi {name}, great question about {their_words}! Let me check for you, and feel free to DM us {dm_link} if it's about your account. ^{agent_initials}",
        ],
    ),
    (
        "Complaint",
        900,
        "",
        "negative",
        False,
        "Apologise without excuses, thank them for telling you, and offer one clear next step (a DM when details are needed). Never tell them they are wrong.",
        [
            "Hi {name}, I'm so sorry about {their_words}, thank you for telling us. I'd like to help make this right: could you DM us {dm_link} with the details? ^{agent_initials}",
            "Hi {name}, sorry to hear about {their_words}. Thanks for letting us know, and please DM us {dm_link} so I can look into it for you personally. ^{agent_initials}",
            "Hi {name}, apologies for {their_words}. We appreciate you flagging it: send us a DM {dm_link} and I'll help sort it out. ^{agent_initials}",
        ],
    ),
    (
        "Other",
        1000,
        "",
        "any",
        False,
        "Thank them for mentioning us and answer what they said. When it is unhappy, apologise and offer a next step.",
        [
            "Hi {name}, thanks for mentioning us about {their_words}. If there's anything we can do, we're happy to help! ^{agent_initials}",
            "Hi {name}, thank you for sharing {their_words}. We appreciate you reaching out, just let us know if we can help. ^{agent_initials}",
            "Hi {name}, good to hear from you about {their_words}! We're here whenever you need us. ^{agent_initials}",
            "Hi {name}, thanks for the note about {their_words}. Anything we can help with, just reply here. ^{agent_initials}",
            "Hi {name}, appreciate you getting in touch about {their_words}. Tell us more any time, we're glad to help. ^{agent_initials}",
        ],
    ),
]
DM_INVITES = [
    "Hi {name}, thank you for your patience with {their_words}. I'd like to help with this personally: could you send us a DM {dm_link}? We'll pick it up right there. ^{agent_initials}",
    "Hi {name}, thanks for bearing with us about {their_words}. So we can look at your details safely, please DM us {dm_link} and I'll take care of it. ^{agent_initials}",
]


def create_starter_playbooks(apps, schema_editor):
    Playbook = apps.get_model("responses", "Playbook")
    ReplyTemplate = apps.get_model("responses", "ReplyTemplate")
    Group = apps.get_model("auth", "Group")
    Group.objects.get_or_create(name=NEEDS_APPROVAL)
    for name, order, phrases, sentiment, questions, guidance, templates in STARTER:
        playbook, created = Playbook.objects.get_or_create(
            name=name,
            defaults={
                "order": order,
                "match_phrases": phrases,
                "match_sentiment": sentiment,
                "match_questions_only": questions,
                "guidance": guidance,
            },
        )
        if not created:
            continue
        ReplyTemplate.objects.bulk_create(
            [ReplyTemplate(playbook=playbook, text=text) for text in templates]
            + [
                ReplyTemplate(playbook=playbook, text=text, is_dm_invite=True)
                for text in DM_INVITES
            ]
        )


def remove_starter_playbooks(apps, schema_editor):
    apps.get_model("responses", "Playbook").objects.filter(
        name__in=[row[0] for row in STARTER]
    ).delete()
    apps.get_model("auth", "Group").objects.filter(name=NEEDS_APPROVAL).delete()


class Migration(migrations.Migration):
    dependencies = [("responses", "0008_playbooks_and_approvals")]
    operations = [migrations.RunPython(create_starter_playbooks, remove_starter_playbooks)]

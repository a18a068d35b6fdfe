"""Realistic documents written for these tests (not taken from any data set)."""

from __future__ import annotations

NEWS = """The city council of Northbridge voted on Tuesday to close the old Harbour Street bridge to cars from March, after engineers found serious corrosion in its steel supports.
The decision, passed by seven votes to two, ends months of debate over the 90-year-old crossing, which carries about 14,000 vehicles a day.
Mayor Elena Ruiz said the council had no choice once the inspection report arrived. "We cannot ask people to drive over a bridge our own engineers say is failing," she told reporters after the vote.
Pedestrians and cyclists will still be allowed to use the bridge while a replacement is designed.
Local businesses on both banks warned that the closure would cut trade. The chamber of commerce estimated that shops near the bridge could lose up to a fifth of their customers during the works.
The council set aside 38 million dollars for a new crossing and expects construction to begin in 2028.
Traffic will be diverted to the Mill Road bridge, two kilometres upstream, where the council plans to add a temporary extra lane and new traffic lights.
Bus operators said routes 4 and 11 would be rerouted and that journeys could take up to ten minutes longer at peak times.
Opposition councillor David Okafor, who voted against the closure, said the council should have repaired the bridge years ago. "This is the price of a decade of neglect," he said.
A public consultation on the design of the new bridge will open next month and run until the end of the year."""

LEGAL = """SERVICES AGREEMENT. This Services Agreement is entered into on 1 June 2026 between Acme Analytics Ltd, a company registered in England (the Supplier), and Brightwater Health Trust (the Customer).
1. Services. The Supplier shall provide the data analysis services described in Schedule 1 (the Services) from 1 July 2026 for an initial term of two years.
2. Fees. The Customer shall pay the Supplier a fixed monthly fee of 12,500 pounds, invoiced in arrears. Invoices are payable within 30 days of receipt.
3. Late payment. Interest accrues on overdue amounts at 4 per cent a year above the Bank of England base rate.
4. Data protection. The Supplier shall process personal data only on the documented instructions of the Customer and shall notify the Customer of any personal data breach within 48 hours of becoming aware of it.
5. Confidentiality. Each party shall keep the other party's confidential information secret and shall not disclose it to any third party, except to its professional advisers or as required by law.
6. Liability. The Supplier's total liability under this Agreement shall not exceed the fees paid in the twelve months before the claim arose. Nothing in this Agreement limits liability for death or personal injury caused by negligence.
7. Termination. Either party may terminate this Agreement on 90 days' written notice. The Customer may terminate immediately if the Supplier commits a material breach that is not remedied within 30 days.
8. Governing law. This Agreement is governed by the law of England and Wales, and the courts of England have exclusive jurisdiction."""

DIALOGUE = """Maya: Hey, are we still on for the hiking trip this Saturday?
Leo: Yes! I checked the weather, it should be sunny all day.
Maya: Great. What time do you want to leave?
Leo: Let's leave at 7 so we beat the crowds at the trailhead.
Maya: Ok. I'll bring sandwiches and water for both of us.
Leo: Perfect, I'll drive and pick you up at your place.
Maya: Should we invite Sam too?
Leo: Sure, I'll text him tonight and ask if he wants to come.
Maya: Cool, see you Saturday then!"""

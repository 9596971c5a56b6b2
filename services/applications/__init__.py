"""Applications service: HTTP intake and owner of cohorts, companies, positions, students,
applications and rankings."""

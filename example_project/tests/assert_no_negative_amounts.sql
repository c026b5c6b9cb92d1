-- A singular data test: fails if any sale has a negative amount.
select * from {{ ref('fact_sales') }} where amount < 0

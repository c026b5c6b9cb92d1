with orders as (
    select
        customer_id,
        count(*) as order_count,
        sum(quantity * unit_price) as lifetime_value,
        max(ordered_at) as last_ordered_at
    from {{ ref('stg_orders') }}
    group by customer_id
)

select
    c.customer_id,
    c.customer_name,
    c.country_name,
    coalesce(o.order_count, 0) as order_count,
    coalesce(o.lifetime_value, 0) as lifetime_value,
    o.last_ordered_at
from {{ ref('stg_customers') }} as c
left join orders as o
    on o.customer_id = c.customer_id

select
    cast(c.customer_id as integer) as customer_id,
    cast(c.name as varchar) as customer_name,
    cast(c.country_code as varchar) as country_code,
    cc.country_name
from {{ source('raw', 'customers') }} as c
left join {{ ref('country_codes') }} as cc
    on cc.country_code = c.country_code
